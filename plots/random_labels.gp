# random_labels: LeNet on randomly permuted labels (Homework 1 HW1-3): train loss falls, test
# loss rises.
# gnuplot -e "results='results/random_labels'; out='docs/figures'" plots/random_labels.gp
if (!exists("results")) results = 'results/random_labels'
if (!exists("out")) out = 'docs/figures'
f = results . '/lenet.csv'
set datafile separator ","
set terminal pngcairo size 1200,460 font "sans,10"
set output out . '/random_labels.png'
set multiplot layout 1,2 title "LeNet, MNIST with randomly permuted training labels, Adam 1e-4, batch 100"
set grid
set xlabel "epoch"
set ylabel "cross-entropy loss"
set key top left
plot f skip 1 using 1:2 with lines lw 2 lc rgb "#1f77b4" title "train (random labels)", \
     f skip 1 using 1:4 with lines lw 2 lc rgb "#d62728" title "test (true labels)"
set ylabel "accuracy (%)"
plot f skip 1 using 1:3 with lines lw 2 lc rgb "#1f77b4" title "train (random labels)", \
     f skip 1 using 1:5 with lines lw 2 lc rgb "#d62728" title "test (true labels)"
unset multiplot
