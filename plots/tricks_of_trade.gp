# tricks_of_trade: TDT4265 Assignment 2 tasks 2-3, loss and accuracy per validation check for the
# base 784-64-10 sigmoid network and each trick alone (the report's Figures 2 and 3).
# gnuplot -e "results='results/tricks_of_trade'; out='docs/figures'" plots/tricks_of_trade.gp
if (!exists("results")) results = 'results/tricks_of_trade'
if (!exists("out")) out = 'docs/figures'
set datafile separator ","
set grid
set key top right
set xlabel "training steps (batch 32)"
names = "base improved_init improved_sigmoid momentum"
titles = "'no improvements' 'improved weight init' 'improved sigmoid' 'momentum (lr 0.02)'"
array colors[4] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
f(i) = results . '/' . word(names, i) . '.csv'

set terminal pngcairo size 1200,460 font "sans,10"
set output out . '/tricks_of_trade_loss.png'
set multiplot layout 1,2 title "784-64-10 on 20 000 MNIST images, early stopping: cross-entropy loss"
set ylabel "train loss (mean of the minibatches since the last check)"
set yrange [0:1]
plot for [i=1:4] f(i) skip 1 using 2:3 with lines lw 1.5 lc rgb colors[i] title word(titles, i)
set ylabel "validation loss (10 000 test images)"
set yrange [0:1]
plot for [i=1:4] f(i) skip 1 using 2:5 with lines lw 1.5 lc rgb colors[i] title word(titles, i)
unset multiplot

set output out . '/tricks_of_trade_accuracy.png'
set multiplot layout 1,2 title "784-64-10 on 20 000 MNIST images, early stopping: accuracy"
set key bottom right
set ylabel "train accuracy (%)"
set yrange [80:100]
plot for [i=1:4] f(i) skip 1 using 2:4 with lines lw 1.5 lc rgb colors[i] title word(titles, i)
set ylabel "validation accuracy (%)"
set yrange [80:100]
plot for [i=1:4] f(i) skip 1 using 2:6 with lines lw 1.5 lc rgb colors[i] title word(titles, i)
unset multiplot
