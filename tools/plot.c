/* learning-curve SVG writer */
typedef int tg_plot_unused;
