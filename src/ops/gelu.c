/* Gelu (opset 20): y = x * Phi(x), element-wise on float32. Attribute
 * 'approximate': "none" (default), Phi(x) = (1 + erf(x / sqrt 2)) / 2, or
 * "tanh", Phi(x) ~ (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) / 2. Smooth. */
#include <math.h>
#include <string.h>

#include "op.h"

#define SQRT1_2 0.70710678118654752f     /* 1 / sqrt(2) */
#define INV_SQRT_2PI 0.3989422804014327f /* 1 / sqrt(2 pi) */
#define SQRT_2_PI 0.79788456080286536f   /* sqrt(2 / pi) */
#define TANH_C 0.044715f

typedef struct gelu_params {
    bool tanh_approx;
} gelu_params;

static evmap_status gelu_init(evm_node *node, evmap_error *err) {
    gelu_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    const char *approx;
    evmap_status st = evm_attr_string(node, "approximate", "none", &approx, err);
    if (st != EVMAP_OK)
        return st;
    if (strcmp(approx, "none") != 0 && strcmp(approx, "tanh") != 0)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "attribute 'approximate' is '%s'; it must be 'none' or 'tanh'",
                             approx);
    p->tanh_approx = strcmp(approx, "tanh") == 0;
    return EVMAP_OK;
}

static void gelu_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         float *workspace) {
    (void)workspace;
    const float *restrict x = evm_f32(in[0]);
    float *restrict y = evm_f32(out[0]);
    size_t n = in[0]->count;
    if (((const gelu_params *)node->params)->tanh_approx) {
        for (size_t i = 0; i < n; i++) {
            float v = x[i];
            float u = SQRT_2_PI * (v + TANH_C * v * v * v);
            y[i] = 0.5f * v * (1.0f + tanhf(u));
        }
    } else {
        for (size_t i = 0; i < n; i++)
            y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * SQRT1_2));
    }
}

/* "none": dy/dx = Phi(x) + x phi(x), phi the normal density; "tanh":
 * (1 + t) / 2 + x (1 - t^2) sqrt(2 / pi) (1 + 3 c x^2) / 2. */
static void gelu_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                          const evm_tensor *grad_out, evm_tensor *const *grad_in,
                          float *workspace) {
    (void)out;
    (void)workspace;
    const float *restrict x = evm_f32(in[0]), *restrict gy = evm_f32(grad_out);
    float *restrict gx = evm_f32(grad_in[0]);
    size_t n = in[0]->count;
    if (((const gelu_params *)node->params)->tanh_approx) {
        for (size_t i = 0; i < n; i++) {
            float v = x[i];
            float t = tanhf(SQRT_2_PI * (v + TANH_C * v * v * v));
            float du = SQRT_2_PI * (1.0f + 3.0f * TANH_C * v * v);
            gx[i] = gy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            float v = x[i];
            float cdf = 0.5f * (1.0f + erff(v * SQRT1_2));
            gx[i] = gy[i] * (cdf + v * INV_SQRT_2PI * expf(-0.5f * v * v));
        }
    }
}

const evm_op_def evm_op_gelu = {
    .name = "Gelu",
    .min_inputs = 1,
    .max_inputs = 1,
    .init = gelu_init,
    .infer = evm_op_infer_same,
    .forward = gelu_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = gelu_backward,
    .kinks = EVM_KINKS_NONE,
};
