# Figures of examples/sigmoid_mlp (Project 3, part 1) from its CSVs:
#   gnuplot -e "results='results/sigmoid_mlp'; out='docs/figures'" plots/sigmoid_mlp.gp
# sigmoid_mlp_overfit.png     train/validation accuracy per epoch, first 2 000 vs all 50 000 images
# sigmoid_mlp_confusion.png   confusion matrix of the full variant on the test set
# sigmoid_mlp_w1.png          W1's 64 rows as 28x28 images (full variant)
if (!exists("results")) results = 'results/sigmoid_mlp'
if (!exists("out")) out = 'docs/figures'
set datafile separator ','
set terminal pngcairo size 1100,450 font ',10' noenhanced
set output out.'/sigmoid_mlp_overfit.png'
set multiplot layout 1,2 title 'sigmoid MLP 784-64-10, SGD lr 1e-3, batch 256: accuracy per epoch'
set xlabel 'epoch'
set ylabel 'accuracy (%)'
set key bottom right
set grid
set yrange [0:100]
set title 'trained on the first 2 000 images'
plot results.'/curves_first2000.csv' skip 1 using 1:3 with lines lw 2 title 'train (2 000)', \
     '' skip 1 using 1:5 with lines lw 2 title 'validation (10 000)'
set title 'trained on all 50 000 images'
plot results.'/curves_full.csv' skip 1 using 1:3 with lines lw 2 title 'train (50 000)', \
     '' skip 1 using 1:5 with lines lw 2 title 'validation (10 000)'
unset multiplot

# confusion matrix: counts on a log-ish colour scale so the off-diagonal cells show
set terminal pngcairo size 640,560 font ',10' noenhanced
set output out.'/sigmoid_mlp_confusion.png'
reset
set datafile separator ','
set title 'sigmoid MLP, full variant: confusion matrix on the 10 000 test images'
set xlabel 'predicted digit'
set ylabel 'true digit'
set xrange [-0.5:9.5]
set yrange [9.5:-0.5]
set xtics 0,1,9
set ytics 0,1,9
set palette defined (0 'white', 1 '#fee08b', 2 '#f46d43', 3 '#a50026')
set cblabel 'log10(1 + count)'
set view map
plot results.'/confusion_full.csv' skip 1 using 2:1:(log10(1+$3)) with image notitle, \
     '' skip 1 using 2:1:(sprintf('%d', $3)) with labels font ',8' notitle

# W1: an 8x8 grid of 28x28 tiles, each scaled to [0, 1] (black to white); the gaps are -1 (white)
set terminal pngcairo size 640,640 font ',10' noenhanced
set output out.'/sigmoid_mlp_w1.png'
reset
set datafile separator ','
set title "sigmoid MLP, full variant: the 64 rows of W1 as 28x28 images (each scaled to its own range)"
set cbrange [-1:1]
set palette defined (-1 'white', -0.001 'white', 0 'black', 1 'white')
unset colorbox
unset xtics
unset ytics
unset border
set size ratio -1
set yrange [*:*] reverse
set xrange [-0.5:230.5]
set yrange [230.5:-0.5]
plot results.'/w1_full.csv' matrix with image notitle
