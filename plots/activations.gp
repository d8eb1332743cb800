# activations: every activation of nn.h and its derivative on [-5, 5] (ENGR 510 homework,
# question 8).
# gnuplot -e "results='results/activations'; out='docs/figures'" plots/activations.gp
if (!exists("results")) results = 'results/activations'
if (!exists("out")) out = 'docs/figures'
f = results . '/activations.csv'
set datafile separator ","
set grid
set key top left
set xlabel "x"
set xrange [-5:5]

# The report's Figure 1: ReLU and its derivative.
set terminal pngcairo size 700,460 font "sans,10"
set output out . '/activations_relu.png'
set title "ReLU and its derivative (nn_activation_forward / _backward)" noenhanced
set yrange [-0.5:5.2]
plot f skip 1 using 1:2 with lines lw 2 lc rgb "#1f77b4" title "relu(x)", \
     f skip 1 using 1:3 with lines lw 2 dt 2 lc rgb "#d62728" title "relu'(x)"

set terminal pngcairo size 1200,460 font "sans,10"
set output out . '/activations.png'
unset title
set yrange [*:*]
set multiplot layout 1,2 title "Activations of nn.h (left) and their derivatives (right), from the library's kernels"
set ylabel "f(x)"
set yrange [-2:3]
plot f skip 1 using 1:2 with lines lw 2 lc rgb "#1f77b4" title "ReLU", \
     f skip 1 using 1:4 with lines lw 2 dt 2 lc rgb "#17becf" title "LeakyReLU (0.01)", \
     f skip 1 using 1:6 with lines lw 2 lc rgb "#2ca02c" title "sigmoid", \
     f skip 1 using 1:8 with lines lw 2 lc rgb "#ff7f0e" title "tanh", \
     f skip 1 using 1:10 with lines lw 2 lc rgb "#d62728" title "1.7159 tanh(2x/3)"
set ylabel "f'(x)"
set yrange [-0.1:1.3]
plot f skip 1 using 1:3 with lines lw 2 lc rgb "#1f77b4" title "ReLU", \
     f skip 1 using 1:5 with lines lw 2 dt 2 lc rgb "#17becf" title "LeakyReLU (0.01)", \
     f skip 1 using 1:7 with lines lw 2 lc rgb "#2ca02c" title "sigmoid", \
     f skip 1 using 1:9 with lines lw 2 lc rgb "#ff7f0e" title "tanh", \
     f skip 1 using 1:11 with lines lw 2 lc rgb "#d62728" title "1.7159 tanh(2x/3)"
unset multiplot
