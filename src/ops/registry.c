/* The operator table: one definition per evm_op_kind. */
#include <string.h>

#include "op.h"

static const evm_op_def *const op_table[] = {
    [EVM_OP_CONV] = &evm_op_conv,
    [EVM_OP_GEMM] = &evm_op_gemm,
    [EVM_OP_MATMUL] = &evm_op_matmul,
    [EVM_OP_RELU] = &evm_op_relu,
    [EVM_OP_LEAKY_RELU] = &evm_op_leaky_relu,
    [EVM_OP_SIGMOID] = &evm_op_sigmoid,
    [EVM_OP_TANH] = &evm_op_tanh,
    [EVM_OP_CLIP] = &evm_op_clip,
    [EVM_OP_MAX_POOL] = &evm_op_max_pool,
    [EVM_OP_AVERAGE_POOL] = &evm_op_average_pool,
    [EVM_OP_GLOBAL_AVERAGE_POOL] = &evm_op_global_average_pool,
    [EVM_OP_GLOBAL_MAX_POOL] = &evm_op_global_max_pool,
    [EVM_OP_BATCH_NORMALIZATION] = &evm_op_batch_normalization,
    [EVM_OP_LRN] = &evm_op_lrn,
    [EVM_OP_ADD] = &evm_op_add,
    [EVM_OP_MUL] = &evm_op_mul,
    [EVM_OP_CONCAT] = &evm_op_concat,
    [EVM_OP_FLATTEN] = &evm_op_flatten,
    [EVM_OP_RESHAPE] = &evm_op_reshape,
    [EVM_OP_TRANSPOSE] = &evm_op_transpose,
    [EVM_OP_SOFTMAX] = &evm_op_softmax,
    [EVM_OP_DROPOUT] = &evm_op_dropout,
    [EVM_OP_IDENTITY] = &evm_op_identity,
    [EVM_OP_PAD] = &evm_op_pad,
    [EVM_OP_CONSTANT] = &evm_op_constant,
    [EVM_OP_SHAPE] = &evm_op_shape,
    [EVM_OP_GATHER] = &evm_op_gather,
    [EVM_OP_UNSQUEEZE] = &evm_op_unsqueeze,
    [EVM_OP_SQUEEZE] = &evm_op_squeeze,
    [EVM_OP_LAYER_NORMALIZATION] = &evm_op_layer_normalization,
    [EVM_OP_INSTANCE_NORMALIZATION] = &evm_op_instance_normalization,
    [EVM_OP_CAST] = &evm_op_cast,
    [EVM_OP_SLICE] = &evm_op_slice,
    [EVM_OP_SPLIT] = &evm_op_split,
    [EVM_OP_EXPAND] = &evm_op_expand,
    [EVM_OP_TILE] = &evm_op_tile,
    [EVM_OP_CONSTANT_OF_SHAPE] = &evm_op_constant_of_shape,
    [EVM_OP_RANGE] = &evm_op_range,
    [EVM_OP_WHERE] = &evm_op_where,
    [EVM_OP_EQUAL] = &evm_op_equal,
    [EVM_OP_LESS] = &evm_op_less,
    [EVM_OP_GREATER] = &evm_op_greater,
    [EVM_OP_NOT] = &evm_op_not,
    [EVM_OP_HARD_SIGMOID] = &evm_op_hard_sigmoid,
    [EVM_OP_HARD_SWISH] = &evm_op_hard_swish,
    [EVM_OP_PRELU] = &evm_op_prelu,
    [EVM_OP_ELU] = &evm_op_elu,
    [EVM_OP_SELU] = &evm_op_selu,
    [EVM_OP_SOFTPLUS] = &evm_op_softplus,
    [EVM_OP_SOFTSIGN] = &evm_op_softsign,
    [EVM_OP_MISH] = &evm_op_mish,
    [EVM_OP_GELU] = &evm_op_gelu,
    [EVM_OP_REDUCE_MEAN] = &evm_op_reduce_mean,
    [EVM_OP_REDUCE_SUM] = &evm_op_reduce_sum,
    [EVM_OP_REDUCE_MAX] = &evm_op_reduce_max,
    [EVM_OP_REDUCE_L2] = &evm_op_reduce_l2,
    [EVM_OP_SUB] = &evm_op_sub,
    [EVM_OP_DIV] = &evm_op_div,
    [EVM_OP_POW] = &evm_op_pow,
    [EVM_OP_SQRT] = &evm_op_sqrt,
    [EVM_OP_EXP] = &evm_op_exp,
    [EVM_OP_LOG] = &evm_op_log,
    [EVM_OP_NEG] = &evm_op_neg,
    [EVM_OP_ABS] = &evm_op_abs,
    [EVM_OP_RECIPROCAL] = &evm_op_reciprocal,
    [EVM_OP_ERF] = &evm_op_erf,
    [EVM_OP_MIN] = &evm_op_min,
    [EVM_OP_MAX] = &evm_op_max,
    [EVM_OP_SUM] = &evm_op_sum,
    [EVM_OP_MEAN] = &evm_op_mean,
    [EVM_OP_CONV_TRANSPOSE] = &evm_op_conv_transpose,
    [EVM_OP_RESIZE] = &evm_op_resize,
    [EVM_OP_UPSAMPLE] = &evm_op_upsample,
    [EVM_OP_DEPTH_TO_SPACE] = &evm_op_depth_to_space,
    [EVM_OP_SPACE_TO_DEPTH] = &evm_op_space_to_depth,
    [EVM_OP_REDUCE_MIN] = &evm_op_reduce_min,
    [EVM_OP_REDUCE_PROD] = &evm_op_reduce_prod,
    [EVM_OP_REDUCE_L1] = &evm_op_reduce_l1,
    [EVM_OP_REDUCE_SUM_SQUARE] = &evm_op_reduce_sum_square,
    [EVM_OP_REDUCE_LOG_SUM] = &evm_op_reduce_log_sum,
    [EVM_OP_REDUCE_LOG_SUM_EXP] = &evm_op_reduce_log_sum_exp,
    [EVM_OP_LOG_SOFTMAX] = &evm_op_log_softmax,
    [EVM_OP_GREATER_OR_EQUAL] = &evm_op_greater_or_equal,
    [EVM_OP_LESS_OR_EQUAL] = &evm_op_less_or_equal,
    [EVM_OP_CASTLIKE] = &evm_op_castlike,
    [EVM_OP_THRESHOLDED_RELU] = &evm_op_thresholded_relu,
    [EVM_OP_FLOOR] = &evm_op_floor,
    [EVM_OP_CEIL] = &evm_op_ceil,
    [EVM_OP_COS] = &evm_op_cos,
    [EVM_OP_SIN] = &evm_op_sin,
};

/* A new kind without a table entry fails to compile here. */
_Static_assert(sizeof op_table / sizeof op_table[0] == EVM_OP_KIND_COUNT,
               "every evm_op_kind needs an entry in op_table");

const evm_op_def *evm_op_get(evm_op_kind kind) {
    return op_table[kind];
}

bool evm_op_lookup(const char *op_type, evm_op_kind *out) {
    for (int k = 0; k < EVM_OP_KIND_COUNT; k++) {
        if (strcmp(op_table[k]->name, op_type) == 0) {
            *out = (evm_op_kind)k;
            return true;
        }
    }
    return false;
}

const char *evm_op_supported_list(void) {
    return "Abs, Add, AveragePool, BatchNormalization, Cast, CastLike, Ceil, Clip, Concat, "
           "Constant, ConstantOfShape, Conv, ConvTranspose, Cos, DepthToSpace, Div, Dropout, "
           "Elu, Equal, Erf, Exp, Expand, Flatten, Floor, Gather, Gelu, Gemm, GlobalAveragePool, "
           "GlobalMaxPool, Greater, GreaterOrEqual, HardSigmoid, HardSwish, Identity, "
           "InstanceNormalization, LRN, LayerNormalization, LeakyRelu, Less, LessOrEqual, Log, "
           "LogSoftmax, MatMul, Max, MaxPool, Mean, Min, Mish, Mul, Neg, Not, PRelu, Pad, Pow, "
           "Range, Reciprocal, ReduceL1, ReduceL2, ReduceLogSum, ReduceLogSumExp, ReduceMax, "
           "ReduceMean, ReduceMin, ReduceProd, ReduceSum, ReduceSumSquare, Relu, Reshape, "
           "Resize, Selu, Shape, Sigmoid, Sin, Slice, Softmax, Softplus, Softsign, SpaceToDepth, "
           "Split, Sqrt, Squeeze, Sub, Sum, Tanh, ThresholdedRelu, Tile, Transpose, Unsqueeze, "
           "Upsample, Where";
}

const char *evm_kinks_name(evm_kinks kinks) {
    switch (kinks) {
    case EVM_KINKS_NONE: return "none";
    case EVM_KINKS_SIGN: return "sign";
    case EVM_KINKS_BOUNDS: return "bounds";
    case EVM_KINKS_ARGMAX: return "argmax";
    case EVM_KINKS_HARD: return "hard";
    case EVM_KINKS_SIGNUM: return "signum";
    case EVM_KINKS_SELECT: return "select";
    case EVM_KINKS_ARGMIN: return "argmin";
    case EVM_KINKS_THRESHOLD: return "threshold";
    default: return "undeclared";
    }
}
