/*
 * Pow: y = a ^ b with numpy broadcasting (opset < 7: the legacy 'broadcast'
 * and 'axis' attributes). The output has the base's type. float32 and int64
 * bases and exponents; from opset 12 the two may differ (a float32 base with
 * an int64 exponent, as exporters write x ** 2). int64 ^ int64 is exact
 * (wrapping on overflow; a negative exponent gives the truncated quotient:
 * 0, or 1 / +-1); int64 ^ float32 is computed in double and truncated
 * toward zero, saturating.
 */
#include <math.h>

#include "broadcast.h"

static inline int64_t ipow(int64_t a, int64_t b) {
    if (b < 0) /* 1 / a^-b truncated; 0 for 0 ^ negative rather than a trap */
        return a == 1 ? 1 : a == -1 ? (b & 1 ? -1 : 1) : 0;
    uint64_t r = 1, x = (uint64_t)a; /* unsigned: wraps like two's complement */
    for (; b; b >>= 1) {
        if (b & 1)
            r *= x;
        x *= x;
    }
    return (int64_t)r;
}

static inline int64_t to_i64(double v) {
    if (v != v)
        return 0;
    if (v >= 9223372036854775808.0)
        return INT64_MAX;
    if (v < -9223372036854775808.0)
        return INT64_MIN;
    return (int64_t)v;
}

#define POW_FF(x, y) powf((x), (y))
#define POW_FI(x, y) ((float)pow((double)(x), (double)(y)))
#define POW_IF(x, y) to_i64(pow((double)(x), (double)(y)))
/* Derivatives as PyTorch takes them: d/da = b a^(b-1), 0 where b = 0 (also
 * at a = 0); d/db = a^b ln a, 0 where a = 0 and b >= 0. */
#define D_BASE_F(x, y) ((y) == 0.0f ? 0.0f : (y)*powf((x), (y)-1.0f))
#define D_BASE_I(x, y) ((y) == 0 ? 0.0f : (float)((double)(y)*pow((double)(x), (double)(y)-1.0)))
#define D_EXP_F(x, y) ((x) == 0.0f && (y) >= 0.0f ? 0.0f : powf((x), (y)) * logf(x))

EVM_DEFINE_ROW_KERNELS(pow_ff, float, float, float, POW_FF)
EVM_DEFINE_ROW_KERNELS(pow_fi, float, float, int64_t, POW_FI)
EVM_DEFINE_ROW_KERNELS(pow_ii, int64_t, int64_t, int64_t, ipow)
EVM_DEFINE_ROW_KERNELS(pow_if, int64_t, int64_t, float, POW_IF)
EVM_DEFINE_ROW_KERNELS(d_base_f, float, float, float, D_BASE_F)
EVM_DEFINE_ROW_KERNELS(d_base_i, float, float, int64_t, D_BASE_I)
EVM_DEFINE_ROW_KERNELS(d_exp_f, float, float, float, D_EXP_F)

static evmap_status pow_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              evmap_error *err) {
    if (!in[0] || !in[1])
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "needs two inputs");
    for (int i = 0; i < 2; i++)
        if (in[i]->dtype != EVM_DTYPE_FLOAT && in[i]->dtype != EVM_DTYPE_INT64)
            return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                                 "input %d has data type %s; only float32 and int64 are supported",
                                 i, evm_dtype_name(in[i]->dtype));
    if (in[0]->dtype != in[1]->dtype && node->opset < 12)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "base and exponent have different data types (%s and %s), which "
                             "opset %d does not allow (from opset 12 on)",
                             evm_dtype_name(in[0]->dtype), evm_dtype_name(in[1]->dtype),
                             node->opset);
    return evm_binary_infer_shape(node, in, out, err);
}

static void pow_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                        float *workspace) {
    (void)workspace;
    bool base_int = in[0]->dtype == EVM_DTYPE_INT64, exp_int = in[1]->dtype == EVM_DTYPE_INT64;
    const evm_row_kernels *k =
        base_int ? (exp_int ? &pow_ii : &pow_if) : (exp_int ? &pow_fi : &pow_ff);
    evm_binary_forward_rows(node, k, in, out);
}

/* Only float32 inputs are differentiated (an int64 exponent is a constant). */
static void pow_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         const evm_tensor *grad_out, evm_tensor *const *grad_in, float *workspace) {
    (void)out;
    const evm_row_kernels *dk[2] = {&d_base_f, &d_exp_f};
    if (in[1]->dtype == EVM_DTYPE_INT64)
        dk[0] = &d_base_i;
    evm_binary_backward_rows(node, dk, in, grad_out, grad_in, workspace);
}

const evm_op_def evm_op_pow = {
    .name = "Pow",
    .min_inputs = 2,
    .max_inputs = 2,
    .init = evm_binary_init,
    .infer = pow_infer,
    .forward = pow_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0 | 1u << 1,
    .backward = pow_backward,
    .backward_workspace = evm_binary_backward_workspace,
    .kinks = EVM_KINKS_NONE,
};
