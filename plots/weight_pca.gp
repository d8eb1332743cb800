# Figures of examples/weight_pca (Homework 1 HW1-2): the weight vectors collected every 3 epochs of
# 8 training runs, reduced to 2-D by PCA (whole model and first layer), coloured by run and
# annotated with the test accuracy (%) (at every 4th point and the last, to stay readable).
# gnuplot -e "results='results/weight_pca'; out='docs/figures'" plots/weight_pca.gp
if (!exists("results")) results = 'results/weight_pca'
if (!exists("out")) out = 'docs/figures'
set datafile separator ','
set terminal pngcairo size 1000,760 enhanced font ',11'
set grid
set key outside right top
set xlabel 'PC 1'
set ylabel 'PC 2'

do for [part in "whole layer1"] {
    file = results.'/pca_'.part.'.csv'
    stats file using 1 skip 1 nooutput
    nruns = int(STATS_max)
    stats file using 2 skip 1 nooutput
    last = int(STATS_max)
    set output out.'/weight_pca_'.part.'.png'
    set title (part eq 'whole' ? 'PCA of the whole model''s weights (8240), every 3 epochs, '.nruns.' runs' \
                               : 'PCA of the first layer''s weights (7840), every 3 epochs, '.nruns.' runs')
    # labels at every 4th snapshot and at the last one, to keep them readable
    plot for [r=1:nruns] file using (column(1) == r ? $3 : 1/0):4 skip 1 with linespoints pt 7 ps 1.1 lw 1 \
             lc r title sprintf('run %d', r), \
         for [r=1:nruns] file using (column(1) == r && ((int(column(2)) % 12 == 3 && int(column(2)) < last - 6) || int(column(2)) == last) ? $3 : 1/0):4:(sprintf('%.1f', $5)) \
             skip 1 with labels font ',8' offset 0,0.8 tc lt r notitle
}
