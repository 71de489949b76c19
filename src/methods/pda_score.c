/*
 * PDA's scores (DESIGN.md 1.1): each target's log2 odds, from logits in
 * double so that p near 0 or 1 keeps its precision, averaged over a
 * window's rows of a plan; a hidden unit's mean activation instead for
 * --target. Turns a window's scores into its weight of evidence.
 */
#include <math.h>
#include <string.h>

#include "engine/model_internal.h"
#include "pda_internal.h"

/* p and q = 1 − p of class c for one output row, computed stably. */
static void class_p_q(const float *row, int k, int c, bool softmaxed, double *p, double *q) {
    if (softmaxed) {
        double rest = 0;
        for (int j = 0; j < k; j++)
            rest += j == c ? 0.0 : (double)row[j];
        *p = row[c];
        *q = rest;
        return;
    }
    double m = -INFINITY;
    for (int j = 0; j < k; j++)
        if (j != c && row[j] > m)
            m = row[j];
    double sum = 0;
    for (int j = 0; j < k; j++)
        if (j != c)
            sum += exp((double)row[j] - m);
    double log_odds = (double)row[c] - (m + log(sum));
    *p = 1.0 / (1.0 + exp(-log_odds));
    *q = 1.0 / (1.0 + exp(log_odds));
}

/* Mean activation of the hidden target's channel in batch row b. */
static double hidden_score(const evm_tensor *t, int channel, int b) {
    size_t per_channel = 1;
    for (int i = 2; i < t->rank; i++)
        per_channel *= (size_t)t->dims[i];
    size_t channels = (size_t)t->dims[1];
    const float *x = evm_f32(t) + ((size_t)b * channels + (size_t)channel) * per_channel;
    double sum = 0;
    for (size_t i = 0; i < per_channel; i++)
        sum += x[i];
    return sum / (double)per_channel;
}

/* Score of target t for the mean over rows [first, first + count) of plan. */
static double target_score(const pda_run *r, evm_plan *plan, int t, int first, int count) {
    if (r->hidden) {
        const evm_tensor *hidden = &plan->values[r->hidden_value];
        double sum = 0;
        for (int b = first; b < first + count; b++)
            sum += hidden_score(hidden, r->opt->target_channel, b);
        return sum / count;
    }
    const float *out = evm_f32(evm_plan_output(plan, 0));
    int k = r->num_classes;
    double p = 0, q = 0;
    for (int b = first; b < first + count; b++) {
        double pb, qb;
        class_p_q(out + (size_t)b * (size_t)k, k, r->opt->classes[t], r->softmaxed, &pb, &qb);
        p += pb;
        q += qb;
    }
    return pda_log2_odds(p / count, q / count, r->opt->laplace_n, k);
}

void pda_score_window(pda_run *r, evm_plan *plan, pda_window w, int row) {
    double we[PDA_MAX_TARGETS];
    for (int t = 0; t < r->n_targets; t++)
        we[t] = r->base[t] - target_score(r, plan, t, row, r->rows);
    pda_add_evidence(r, w, we);
}

/* Scores of the unperturbed image. */
void pda_score_original(pda_run *r) {
    evm_plan *plan = r->single->plan;
    size_t per_image = (size_t)r->c * (size_t)r->h * (size_t)r->w;
    memcpy(evm_f32(evm_plan_input(plan, 0)), r->input, per_image * sizeof(float));
    evm_plan_run(plan);
    r->forward_images++;
    for (int t = 0; t < r->n_targets; t++)
        r->base[t] = target_score(r, plan, t, 0, 1);
}
