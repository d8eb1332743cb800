/* load_predict.c - the second of two programs built from nn.h alone (tests/standalone/README.md):
   rebuilds the model train_save.c saved with nn_model_load (no graph code here), predicts the
   inputs train_save wrote, and exits 0 if every class is the one train_save predicted (and the
   probabilities of each sample sum to 1, and the class names came back), 1 otherwise.
   Usage: load_predict MODEL_FILE PREDICTIONS_FILE */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SAMPLES 1000

static int fail(const char *what)
{
    fprintf(stderr, "load_predict: %s: %s\n", what, nn_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    static float x[MAX_SAMPLES * 16], probabilities[MAX_SAMPLES * 16];
    static int expected[MAX_SAMPLES], predicted[MAX_SAMPLES];
    nn_model *m = NULL;
    const char *classes;
    int features, outputs, count = 0, i, k, wrong = 0;
    FILE *in;
    if (argc != 3) {
        fprintf(stderr, "usage: load_predict MODEL_FILE PREDICTIONS_FILE\n");
        return 2;
    }
    if (nn_model_load(argv[1], 8, &m) != NN_OK) return fail("nn_model_load");
    features = nn_input_size(m);
    outputs = nn_output_size(m);
    classes = nn_get_meta(m, "classes");
    if (features > 16 || outputs > 16 || !classes || strcmp(classes, "north,west,south") != 0) {
        fprintf(stderr, "load_predict: unexpected model: %d inputs, %d outputs, classes %s\n", features, outputs,
                classes ? classes : "(none)");
        return 1;
    }
    in = fopen(argv[2], "r");
    if (!in) {
        perror(argv[2]);
        return 1;
    }
    for (;;) {
        char word[64];
        for (k = 0; k < features; k++) {
            if (fscanf(in, "%63s", word) != 1) break;
            x[count * features + k] = (float)strtod(word, NULL);
        }
        if (k < features || fscanf(in, "%d", &expected[count]) != 1) break;
        if (++count == MAX_SAMPLES) break;
    }
    fclose(in);
    if (count == 0) {
        fprintf(stderr, "load_predict: no samples in %s\n", argv[2]);
        return 1;
    }
    /* more samples than the model's batch of 8: nn_predict runs them in batches */
    if (nn_predict_classes(m, x, count, predicted) != NN_OK) return fail("nn_predict_classes");
    if (nn_predict(m, x, count, probabilities) != NN_OK) return fail("nn_predict");
    for (i = 0; i < count; i++) {
        double sum = 0.0;
        for (k = 0; k < outputs; k++) sum += probabilities[i * outputs + k];
        if (predicted[i] != expected[i] || fabs(sum - 1.0) > 1e-5) {
            fprintf(stderr, "load_predict: sample %d: class %d (train_save predicted %d), probabilities sum to %.7f\n", i,
                    predicted[i], expected[i], sum);
            wrong++;
        }
    }
    printf("load_predict: %d of %d samples predicted as train_save did (classes %s)\n", count - wrong, count, classes);
    nn_model_free(m);
    return wrong ? 1 : 0;
}
