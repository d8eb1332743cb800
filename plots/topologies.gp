# topologies: TDT4265 Assignment 2 task 4, loss and accuracy per validation check for five hidden
# topologies with all three tricks on (the report's Figures 4 and 5).
# gnuplot -e "results='results/topologies'; out='docs/figures'" plots/topologies.gp
if (!exists("results")) results = 'results/topologies'
if (!exists("out")) out = 'docs/figures'
set datafile separator ","
set grid
set key top right
set xlabel "training steps (batch 32)"
names = "h64 h32 h128 h2x60 h10x64"
titles = "'64' '32' '128' '60-60' '10 x 64'"
array colors[5] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"]
f(i) = results . '/' . word(names, i) . '.csv'

set terminal pngcairo size 1200,460 font "sans,10"
set output out . '/topologies_loss.png'
set multiplot layout 1,2 title "784-H-10, all tricks (fan-in init, 1.7159 tanh(2x/3), momentum), early stopping: cross-entropy loss"
set ylabel "train loss (mean of the minibatches since the last check)"
set yrange [0:1]
plot for [i=1:5] f(i) skip 1 using 2:3 with lines lw 1.5 lc rgb colors[i] title word(titles, i)
set ylabel "validation loss (10 000 test images)"
set yrange [0:1]
plot for [i=1:5] f(i) skip 1 using 2:5 with lines lw 1.5 lc rgb colors[i] title word(titles, i)
unset multiplot

set output out . '/topologies_accuracy.png'
set multiplot layout 1,2 title "784-H-10, all tricks (fan-in init, 1.7159 tanh(2x/3), momentum), early stopping: accuracy"
set key bottom right
set ylabel "train accuracy (%)"
set yrange [80:100]
plot for [i=1:5] f(i) skip 1 using 2:4 with lines lw 1.5 lc rgb colors[i] title word(titles, i)
set ylabel "validation accuracy (%)"
set yrange [80:100]
plot for [i=1:5] f(i) skip 1 using 2:6 with lines lw 1.5 lc rgb colors[i] title word(titles, i)
unset multiplot
