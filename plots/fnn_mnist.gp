# fnn_mnist: Deep Learning Assignment 1 Q3, 784-128-64-10 with Adam 1e-3, batch 64, 10 epochs: loss
# and accuracy per epoch, with logits into cross-entropy (fnn) and with the report's softmax output
# layer.
# gnuplot -e "results='results/fnn_mnist'; out='docs/figures'" plots/fnn_mnist.gp
if (!exists("results")) results = 'results/fnn_mnist'
if (!exists("out")) out = 'docs/figures'
set datafile separator ","
set grid
set xlabel "epoch"
a = results . '/fnn.csv'
b = results . '/softmax_output.csv'
set terminal pngcairo size 1200,460 font "sans,10"
set output out . '/fnn_mnist.png'
set multiplot layout 1,2 title "784-128-64-10, inputs normalised (0.5, 0.5), Adam 1e-3, batch 64"
set key center right
set ylabel "cross-entropy loss"
plot a skip 1 using 1:2 with linespoints pt 7 lw 2 lc rgb "#1f77b4" title "fnn: train (epoch mean)", \
     a skip 1 using 1:4 with linespoints pt 7 lw 2 dt 2 lc rgb "#1f77b4" title "fnn: test", \
     b skip 1 using 1:2 with linespoints pt 5 lw 2 lc rgb "#d62728" title "softmax output: train", \
     b skip 1 using 1:4 with linespoints pt 5 lw 2 dt 2 lc rgb "#d62728" title "softmax output: test"
set key bottom right
set ylabel "accuracy (%)"
plot a skip 1 using 1:3 with linespoints pt 7 lw 2 lc rgb "#1f77b4" title "fnn: train (epoch mean)", \
     a skip 1 using 1:5 with linespoints pt 7 lw 2 dt 2 lc rgb "#1f77b4" title "fnn: test", \
     b skip 1 using 1:3 with linespoints pt 5 lw 2 lc rgb "#d62728" title "softmax output: train", \
     b skip 1 using 1:5 with linespoints pt 5 lw 2 dt 2 lc rgb "#d62728" title "softmax output: test"
unset multiplot
