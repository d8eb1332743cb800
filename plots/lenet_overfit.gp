# Figures of examples/lenet_overfit (Project 3, part 2) from its CSVs:
#   gnuplot -e "results='results/lenet_overfit'; out='docs/figures'" plots/lenet_overfit.gp
# lenet_overfit.png   train/validation accuracy per epoch, first 2 000 vs all 50 000 images
# lenet_overfit_loss.png   the same runs' train/validation loss (log scale)
if (!exists("results")) results = 'results/lenet_overfit'
if (!exists("out")) out = 'docs/figures'
set datafile separator ','
set terminal pngcairo size 1100,450 font ',10' noenhanced
set output out.'/lenet_overfit.png'
set multiplot layout 1,2 title 'LeNet (44 426 parameters), SGD lr 0.01 momentum 0.9, batch 64: accuracy per epoch'
set xlabel 'epoch'
set ylabel 'accuracy (%)'
set key bottom right
set grid
set yrange [*:100]
set title 'trained on the first 2 000 images'
plot results.'/curves_first2000.csv' skip 1 using 1:3 with linespoints pt 7 ps 0.4 lw 2 title 'train (2 000)', \
     '' skip 1 using 1:5 with linespoints pt 7 ps 0.4 lw 2 title 'validation (10 000)'
set title 'trained on all 50 000 images'
plot results.'/curves_full.csv' skip 1 using 1:3 with linespoints pt 7 ps 0.4 lw 2 title 'train (50 000)', \
     '' skip 1 using 1:5 with linespoints pt 7 ps 0.4 lw 2 title 'validation (10 000)'
unset multiplot

set output out.'/lenet_overfit_loss.png'
set multiplot layout 1,2 title 'LeNet: loss per epoch (whole sets, end of epoch)'
set ylabel 'cross-entropy'
set logscale y
set yrange [*:*]
set key top right
set title 'trained on the first 2 000 images'
plot results.'/curves_first2000.csv' skip 1 using 1:2 with lines lw 2 title 'train', \
     '' skip 1 using 1:4 with lines lw 2 title 'validation'
set title 'trained on all 50 000 images'
plot results.'/curves_full.csv' skip 1 using 1:2 with lines lw 2 title 'train', \
     '' skip 1 using 1:4 with lines lw 2 title 'validation'
unset multiplot
