# flatness_sensitivity: loss, accuracy and input-gradient sensitivity against batch size
# (Homework 1 HW1-3 flatness part 2): docs/figures/flatness_sensitivity.png (the report's figure)
# and flatness_sensitivity_curves.png (sensitivity per epoch and against the test loss, every
# batch size).
# gnuplot -e "results='results/flatness_sensitivity'; out='docs/figures'" plots/flatness_sensitivity.gp
if (!exists("results")) results = 'results/flatness_sensitivity'
if (!exists("out")) out = 'docs/figures'
f = results . '/sensitivity.csv'
set datafile separator ","
set terminal pngcairo size 900,900 font "sans,10"
set output out . '/flatness_sensitivity.png'
set multiplot layout 2,1 title "784-20-30-10 MLP, SGD lr 1e-3: sensitivity = RMS over test images of |d loss_i / d x_i|"
set grid
set logscale x
set autoscale xfix
set offsets graph 0.05, graph 0.05, 0, 0
set xlabel "batch size"
set ytics nomirror
set y2tics
set y2label "sensitivity" textcolor rgb "#2ca02c"
set key below horizontal
set ylabel "cross-entropy loss" textcolor rgb "#1f77b4"
plot f skip 1 using 1:2 axes x1y1 with linespoints lw 2 lc rgb "#1f77b4" title "train loss", \
     f skip 1 using 1:4 axes x1y1 with linespoints lw 2 dt 2 lc rgb "#1f77b4" title "test loss", \
     f skip 1 using 1:6 axes x1y2 with linespoints lw 2 pt 7 lc rgb "#2ca02c" title "sensitivity"
set ylabel "accuracy (%)" textcolor rgb "#d62728"
set key below horizontal
plot f skip 1 using 1:3 axes x1y1 with linespoints lw 2 lc rgb "#d62728" title "train accuracy", \
     f skip 1 using 1:5 axes x1y1 with linespoints lw 2 dt 2 lc rgb "#d62728" title "test accuracy", \
     f skip 1 using 1:6 axes x1y2 with linespoints lw 2 pt 7 lc rgb "#2ca02c" title "sensitivity"
unset multiplot

# the training curves: sensitivity after each epoch, and against the test loss at that epoch
files = system("ls " . results . "/batch*.csv 2>/dev/null | sed 's/.*batch\\([0-9]*\\)[.]csv$/\\1 &/' | sort -n | cut -d' ' -f2-")
reset
set datafile separator ","
set terminal pngcairo size 1200,460 font "sans,10"
set output out . '/flatness_sensitivity_curves.png'
set multiplot layout 1,2 title "sensitivity during training, one curve per batch size"
set grid
set key top left
set xlabel "epoch"
set ylabel "sensitivity (RMS |d loss_i / d x_i|, test set)"
plot for [f in files] f skip 1 using 1:6 with lines lw 2 \
     title "batch " . f[strstrt(f, "/batch") + 6 : strstrt(f, ".csv") - 1]
set xlabel "test loss (training runs from right to left)"
set autoscale xfix
set key top right
set logscale x
plot for [f in files] f skip 1 using 4:6 with lines lw 2 \
     title "batch " . f[strstrt(f, "/batch") + 6 : strstrt(f, ".csv") - 1]
unset multiplot
