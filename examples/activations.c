/* activations: ENGR 510 homework, question 8. Every activation of the library (ReLU, LeakyReLU,
   sigmoid, tanh and LeCun's scaled tanh) and its derivative over x in [-5, 5], computed with
   nn_activation_forward / nn_activation_backward; each derivative is checked against the analytic
   one and against a central finite difference of the library's own forward. */
#define NN_IMPLEMENTATION
#include "common.h"

static const char *summary =
    "ENGR 510 homework (question 8): evaluates ReLU, LeakyReLU (negative slope 0.01, PyTorch's\n"
    "default), sigmoid, tanh and 1.7159 tanh(2x/3) and their derivatives with nn_activation_forward\n"
    "and nn_activation_backward on 1001 points in [-5, 5] (step 0.01) and writes <out>/activations.csv.\n"
    "RESULT per activation: fwd_err (max |f - f_ref| against a double-precision formula),\n"
    "deriv_err (max |f' - f'_ref|), fd_err (max |f' - central difference of the library's f|,\n"
    "h = 0.004, points within h of a kink skipped) and backend_diff (max difference between the\n"
    "current SIMD backend and the scalar one). No training: --data, --epochs, --quick, --checkpoint\n"
    "and --resume change nothing.";

#define N_POINTS 1001
#define FD_STEP 0.004

typedef struct activation { const char *name; nn_activation kind; float parameter; int kinked; } activation;

static double reference(nn_activation kind, double p, double x, double *derivative)
{
    double y, t;
    switch (kind) {
    case NN_ACTIVATION_RELU: *derivative = x > 0 ? 1.0 : 0.0; return x > 0 ? x : 0.0;
    case NN_ACTIVATION_LEAKY_RELU: *derivative = x > 0 ? 1.0 : p; return x > 0 ? x : p * x;
    case NN_ACTIVATION_SIGMOID:
        y = 1.0 / (1.0 + exp(-x));
        *derivative = y * (1.0 - y);
        return y;
    case NN_ACTIVATION_TANH:
        y = tanh(x);
        *derivative = 1.0 - y * y;
        return y;
    case NN_ACTIVATION_SCALED_TANH:
        t = tanh(2.0 * x / 3.0);
        *derivative = 1.7159 * (2.0 / 3.0) * (1.0 - t * t);
        return 1.7159 * t;
    default: *derivative = 1.0; return x;
    }
}

/* f and f' of the library on the current backend. */
static void evaluate(const activation *a, const float *x, float *y, float *dx, int n)
{
    static float ones[N_POINTS];
    int i;
    for (i = 0; i < n; i++) ones[i] = 1.0f;
    nn_activation_forward(a->kind, a->parameter, (size_t)n, x, y);
    nn_activation_backward(a->kind, a->parameter, (size_t)n, x, y, ones, dx);
}

int main(int argc, char **argv)
{
    static const activation acts[] = {
        {"relu", NN_ACTIVATION_RELU, 0.0f, 1},
        {"leaky_relu", NN_ACTIVATION_LEAKY_RELU, 0.01f, 1},
        {"sigmoid", NN_ACTIVATION_SIGMOID, 0.0f, 0},
        {"tanh", NN_ACTIVATION_TANH, 0.0f, 0},
        {"scaled_tanh", NN_ACTIVATION_SCALED_TANH, 0.0f, 0},
    };
    enum { N_ACTS = sizeof acts / sizeof acts[0] };
    static float x[N_POINTS], xp[N_POINTS], xm[N_POINTS], y[N_ACTS][N_POINTS], d[N_ACTS][N_POINTS];
    static float yp[N_POINTS], ym[N_POINTS], sy[N_POINTS], sd[N_POINTS];
    ex_options o = {0};
    const char *backend;
    char header[512];
    FILE *csv;
    int i, k;
    o.name = "activations";
    o.epochs = 1;
    o.seed = 0;
    ex_parse(argc, argv, &o, summary, NULL, 0);
    if (o.checkpoint) {
        fprintf(stderr, "activations: nothing is trained here, so --checkpoint and --resume do not apply\n");
        o.checkpoint = NULL;
        o.resume = 0; /* its CSV file is written afresh */
    }
    backend = nn_backend_name();
    fprintf(stderr, "backend %s\n", backend);
    for (i = 0; i < N_POINTS; i++) {
        x[i] = (float)(-5.0 + 0.01 * i);
        xp[i] = (float)(x[i] + FD_STEP);
        xm[i] = (float)(x[i] - FD_STEP);
    }
    strcpy(header, "x");
    for (k = 0; k < N_ACTS; k++) {
        double fwd = 0.0, der = 0.0, fd = 0.0, bdiff = 0.0;
        evaluate(&acts[k], x, y[k], d[k], N_POINTS);
        nn_activation_forward(acts[k].kind, acts[k].parameter, N_POINTS, xp, yp);
        nn_activation_forward(acts[k].kind, acts[k].parameter, N_POINTS, xm, ym);
        for (i = 0; i < N_POINTS; i++) {
            double dref, fref = reference(acts[k].kind, acts[k].parameter, x[i], &dref);
            fwd = fmax(fwd, fabs(y[k][i] - fref));
            der = fmax(der, fabs(d[k][i] - dref));
            if (acts[k].kinked && fabs(x[i]) < FD_STEP) continue;
            /* the step actually taken in float */
            fd = fmax(fd, fabs(d[k][i] - ((double)yp[i] - ym[i]) / ((double)xp[i] - xm[i])));
        }
        if (strcmp(backend, "scalar")) {
            ex_check(nn_set_backend("scalar"), "scalar backend");
            evaluate(&acts[k], x, sy, sd, N_POINTS);
            ex_check(nn_set_backend(backend), "backend");
            for (i = 0; i < N_POINTS; i++) bdiff = fmax(bdiff, fmax(fabs(sy[i] - y[k][i]), fabs(sd[i] - d[k][i])));
        }
        ex_result(&o, acts[k].name, "fwd_err=%.2e deriv_err=%.2e fd_err=%.2e backend_diff=%.2e backend=%s", fwd, der,
                  fd, bdiff, backend);
        snprintf(header + strlen(header), sizeof header - strlen(header), ",%s,d_%s", acts[k].name, acts[k].name);
    }
    csv = ex_csv_open(&o, "activations.csv", header);
    for (i = 0; i < N_POINTS; i++) {
        fprintf(csv, "%.2f", x[i]);
        for (k = 0; k < N_ACTS; k++) fprintf(csv, ",%.7g,%.7g", y[k][i], d[k][i]);
        fprintf(csv, "\n");
    }
    ex_csv_close(csv);
    fprintf(stderr, "wrote %s/activations.csv\n", o.out_dir);
    return 0;
}
