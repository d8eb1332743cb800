# cnn_compare: loss and accuracy per epoch of LeNet and the custom CNN (Homework 1 HW1-1).
# gnuplot -e "results='results/cnn_compare'; out='docs/figures'" plots/cnn_compare.gp
# Draws whichever of lenet.csv and custom.csv exist.
if (!exists("results")) results = 'results/cnn_compare'
if (!exists("out")) out = 'docs/figures'
file_exists(f) = int(system("[ -f '" . f . "' ] && echo 1 || echo 0"))
join(a, b) = strlen(a) ? a . ", " . b : b
set datafile separator ","
set terminal pngcairo size 1200,460 font "sans,10"
set output out . '/cnn_compare.png'
set multiplot layout 1,2 title "MNIST, SGD lr 0.01 momentum 0.9, batch 64 (dashed: test)"
set grid
set xlabel "epoch"
loss = ''
acc = ''
do for [v in "lenet custom"] {
    f = results . '/' . v . '.csv'
    c = v eq 'lenet' ? '#1f77b4' : '#d62728'
    if (file_exists(f)) {
        loss = join(loss, sprintf("'%s' skip 1 using 1:2 with linespoints lw 2 lc rgb '%s' title '%s train'", f, c, v))
        loss = join(loss, sprintf("'%s' skip 1 using 1:4 with linespoints lw 2 dt 2 lc rgb '%s' title '%s test'", f, c, v))
        acc = join(acc, sprintf("'%s' skip 1 using 1:3 with linespoints lw 2 lc rgb '%s' title '%s train'", f, c, v))
        acc = join(acc, sprintf("'%s' skip 1 using 1:5 with linespoints lw 2 dt 2 lc rgb '%s' title '%s test'", f, c, v))
    }
}
set ylabel "cross-entropy loss"
set logscale y
set key top right
eval("plot " . loss)
unset logscale y
set ylabel "accuracy (%)"
set key bottom right
eval("plot " . acc)
unset multiplot
