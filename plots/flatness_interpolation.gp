# flatness_interpolation: loss and accuracy along theta(alpha) = (1-alpha)*theta_batch100 + alpha*theta_batch500
# (Homework 1 HW1-3 flatness part 1), one PNG per learning rate found in results:
# docs/figures/flatness_interpolation_lr<lr>.png.
# gnuplot -e "results='results/flatness_interpolation'; out='docs/figures'" plots/flatness_interpolation.gp
if (!exists("results")) results = 'results/flatness_interpolation'
if (!exists("out")) out = 'docs/figures'
files = system("ls " . results . "/lr*_interpolation.csv 2>/dev/null")
set datafile separator ","
set terminal pngcairo size 900,560 font "sans,10"
set grid
set xlabel "alpha   (0: batch-100 model, 1: batch-500 model)"
set ylabel "cross-entropy loss (log scale)" textcolor rgb "#1f77b4"
set y2label "accuracy (%)" textcolor rgb "#d62728"
set logscale y
set y2range [0:100]
set ytics nomirror
set y2tics
set xrange [-1:2]
set arrow 1 from 0, graph 0 to 0, graph 1 nohead dt 3 lc rgb "gray40"
set arrow 2 from 1, graph 0 to 1, graph 1 nohead dt 3 lc rgb "gray40"
set key below horizontal
do for [f in files] {
    lr = f[strstrt(f, "/lr") + 3 : strstrt(f, "_interpolation.csv") - 1]
    set output out . '/flatness_interpolation_lr' . lr . '.png'
    set title "784-30-50-10 MLP, SGD lr " . lr . ": interpolating batch 100 -> batch 500"
    plot f skip 1 using 1:2 axes x1y1 with lines lw 2 lc rgb "#1f77b4" title "train loss", \
         f skip 1 using 1:4 axes x1y1 with lines lw 2 dt 2 lc rgb "#1f77b4" title "test loss", \
         f skip 1 using 1:3 axes x1y2 with lines lw 2 lc rgb "#d62728" title "train accuracy", \
         f skip 1 using 1:5 axes x1y2 with lines lw 2 dt 2 lc rgb "#d62728" title "test accuracy"
}
