# Figures of examples/func_fit (Homework 1 HW1-1): loss per epoch of the three 571-parameter models
# and their predicted curves against the target.
# gnuplot -e "results='results/func_fit'; out='docs/figures'" plots/func_fit.gp
if (!exists("results")) results = 'results/func_fit'
if (!exists("out")) out = 'docs/figures'
set datafile separator ','
set terminal pngcairo size 900,540 enhanced font ',11'
set grid

set output out.'/func_fit_loss.png'
set title 'sin(5{/Symbol p}x)/(5{/Symbol p}x): training loss (MSE) per epoch, RMSProp lr 1e-2'
set xlabel 'epoch'
set ylabel 'MSE (log scale)'
set logscale y
set format y '10^{%L}'
set yrange [*:1]   # the first RMSProp steps jump above 1; the interesting part is below
plot results.'/shallow_loss.csv' using 1:2 skip 1 with lines lw 1.5 lc rgb '#9400d3' title 'shallow: 2 dense layers (1-190-1)', \
     results.'/medium_loss.csv' using 1:2 skip 1 with lines lw 1.5 lc rgb '#009e73' title 'medium: 4 dense layers (1-10-20-15-1)', \
     results.'/deep_loss.csv' using 1:2 skip 1 with lines lw 1.5 lc rgb '#56b4e9' title 'deep: 6 dense layers (1-7-12-14-12-7-1)'

unset logscale y
set format y '%g'
set yrange [*:*]
set output out.'/func_fit_predictions.png'
set title 'Predictions after training against the target'
set xlabel 'x'
set ylabel 'y'
set key top right
plot results.'/predictions.csv' using 1:2 skip 1 with lines lw 3 lc rgb '#888888' title 'target', \
     '' using 1:3 skip 1 with lines lw 1.5 lc rgb '#9400d3' title 'shallow (2 layers)', \
     '' using 1:4 skip 1 with lines lw 1.5 lc rgb '#009e73' title 'medium (4 layers)', \
     '' using 1:5 skip 1 with lines lw 1.5 lc rgb '#56b4e9' title 'deep (6 layers)'
