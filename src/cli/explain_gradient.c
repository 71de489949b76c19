/* evmap explain: the gradient family's maps for one image. */
#include "explain.h"

evmap_status explain_gradient_maps(const explain_options *o, explain_state *s, const int *targets,
                                   int n_targets, cli_progress *progress,
                                   evmap_explain_stats *stats, evmap_error *err) {
    evmap_gradient_options g;
    evmap_gradient_options_init(&g);
    g.method = o->gradient_method;
    g.score = o->score;
    g.classes = targets;
    g.n_classes = n_targets;
    g.target_layer = o->target_layer[0] ? o->target_layer : NULL;
    g.target_channel = o->target_channel;
    g.steps = o->steps;
    g.baseline = o->baseline;
    g.noise = o->noise;
    g.samples = o->samples;
    g.seed = o->seed;
    g.layer = o->layer[0] ? o->layer : NULL;
    if (o->batch)
        g.batch = o->batch;
    g.threads = o->threads;
    g.progress = cli_progress_update;
    g.progress_user = progress;
    return evmap_gradient_map(s->model, s->input, &g, s->maps, stats, err);
}
