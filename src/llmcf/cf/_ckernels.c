/*
 * llmcf.cf._ckernels: the compiled kNN hot loops behind llmcf.cf._kernels.
 *
 * Plain CPython C API: arrays arrive through the buffer protocol (no numpy headers), the GIL
 * is released while a kernel runs, and the parallel kernels split their work into ``chunks``
 * interleaved ranges that a few POSIX threads created for the call take one by one (no
 * OpenMP: libgomp's pool does not survive fork, and the service and Spark fork).
 *
 * The arithmetic is that of the formulas in llmcf.cf._kernels, with the same loop and
 * summation order, compiled with -ffp-contract=off and without -ffast-math, so results are
 * bit for bit those of the Python/Spark formulas. Every kernel checks the dtype, layout and
 * length of its arrays before it starts and every index before it uses it, and raises
 * TypeError/ValueError instead of reading out of bounds.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* similarity codes, as in llmcf.cf._kernels */
#define COSINE 0
#define MSD 1
#define PEARSON 2
#define PEARSON_BASELINE 3
#define ADJUSTED_COSINE 4

/* ------------------------------------------------------------------ arrays */

typedef enum { F64, I64, I32 } dtype_t;

typedef struct {
    Py_buffer view;
    int held;
} arr_t;

static const char *dtype_name(dtype_t t)
{
    return t == F64 ? "float64" : (t == I64 ? "int64" : "int32");
}

static int native_prefix(char c)
{
    const uint16_t one = 1;
    int little = *(const uint8_t *)&one == 1;
    return c == '@' || c == '=' || (little && c == '<') || (!little && (c == '>' || c == '!'));
}

/* the struct format character of a one-item buffer format, 0 if not a plain native scalar */
static char format_char(const Py_buffer *v)
{
    const char *f = v->format ? v->format : "B";
    if (native_prefix(f[0]))
        f++;
    if (f[0] == '\0' || f[1] != '\0')
        return 0;
    return f[0];
}

static void describe_format(const Py_buffer *v, char *out, size_t size)
{
    char c = format_char(v);
    const char *name = NULL;
    switch (c) {
    case 'd': name = v->itemsize == 8 ? "float64" : NULL; break;
    case 'f': name = v->itemsize == 4 ? "float32" : NULL; break;
    case 'e': name = "float16"; break;
    case 'g': name = "longdouble"; break;
    case '?': name = "bool"; break;
    case 'b': case 'h': case 'i': case 'l': case 'q':
        snprintf(out, size, "int%d", (int)(8 * v->itemsize));
        return;
    case 'B': case 'H': case 'I': case 'L': case 'Q':
        snprintf(out, size, "uint%d", (int)(8 * v->itemsize));
        return;
    default: break;
    }
    if (name)
        snprintf(out, size, "%s", name);
    else
        snprintf(out, size, "buffer format '%.20s'", v->format ? v->format : "B");
}

static int format_matches(const Py_buffer *v, dtype_t want)
{
    char c = format_char(v);
    switch (want) {
    case F64: return c == 'd' && v->itemsize == 8;
    case I64:
        return (c == 'i' || c == 'l' || c == 'q') && v->itemsize == 8;
    case I32:
        return (c == 'i' || c == 'l') && v->itemsize == 4;
    }
    return 0;
}

/* Acquire ``obj`` as a C-contiguous ``ndim``-dimensional array of ``want``. */
static int acquire(PyObject *obj, const char *name, dtype_t want, int ndim, int writable, arr_t *a)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    char got[64];

    a->held = 0;
    if (!PyObject_CheckBuffer(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a %dD %s numpy array, got %.100s", name, ndim,
                     dtype_name(want), Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (PyObject_GetBuffer(obj, &a->view, flags) < 0) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        PyErr_Format(PyExc_ValueError, "%s must be a C-contiguous%s %s array (%S)", name,
                     writable ? ", writable" : "", dtype_name(want),
                     value ? value : Py_None);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        return -1;
    }
    a->held = 1;
    if (!format_matches(&a->view, want)) {
        describe_format(&a->view, got, sizeof got);
        PyErr_Format(PyExc_TypeError, "%s must be a %s array, got %s", name, dtype_name(want),
                     got);
        return -1;
    }
    if (a->view.ndim != ndim) {
        PyErr_Format(PyExc_ValueError, "%s must be %d-dimensional, got %d dimension(s)", name,
                     ndim, a->view.ndim);
        return -1;
    }
    return 0;
}

static void release_all(arr_t *arrays, int n)
{
    for (int i = 0; i < n; i++)
        if (arrays[i].held) {
            PyBuffer_Release(&arrays[i].view);
            arrays[i].held = 0;
        }
}

static Py_ssize_t dim(const arr_t *a, int d) { return a->view.shape[d]; }

static int check_len(const arr_t *a, const char *name, Py_ssize_t want, const char *what)
{
    if (dim(a, 0) != want) {
        PyErr_Format(PyExc_ValueError, "%s has length %zd, expected %zd (%s)", name, dim(a, 0),
                     want, what);
        return -1;
    }
    return 0;
}

static int check_shape2(const arr_t *a, const char *name, Py_ssize_t rows, Py_ssize_t cols)
{
    if (dim(a, 0) != rows || dim(a, 1) != cols) {
        PyErr_Format(PyExc_ValueError, "%s has shape (%zd, %zd), expected (%zd, %zd)", name,
                     dim(a, 0), dim(a, 1), rows, cols);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ parallel runner */

/*
 * A job is split into ``n_chunks`` interleaved chunks (chunk c covers items c, c + n_chunks,
 * ...). Each thread allocates its scratch once (zeroed), then takes chunks from a shared
 * counter until none is left or a chunk failed. The first error message wins.
 */
typedef struct job_s job_t;
typedef int (*chunk_fn)(job_t *job, void *scratch, int64_t chunk);

struct job_s {
    chunk_fn run_chunk;
    size_t scratch_bytes;
    int64_t n_chunks;
    /* scheduler state */
    pthread_mutex_t lock;
    int64_t next;
    int failed;  /* 1: bad input (message in ``error``), 2: out of memory */
    char error[256];
};

static void job_fail(job_t *job, int code, const char *fmt, ...)
{
    pthread_mutex_lock(&job->lock);
    if (!job->failed) {
        job->failed = code;
        if (fmt) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(job->error, sizeof job->error, fmt, ap);
            va_end(ap);
        }
    }
    pthread_mutex_unlock(&job->lock);
}

static int64_t job_next(job_t *job)
{
    int64_t c = -1;
    pthread_mutex_lock(&job->lock);
    if (!job->failed && job->next < job->n_chunks)
        c = job->next++;
    pthread_mutex_unlock(&job->lock);
    return c;
}

static void *job_worker(void *arg)
{
    job_t *job = (job_t *)arg;
    void *scratch = calloc(1, job->scratch_bytes ? job->scratch_bytes : 1);
    int64_t c;
    if (!scratch) {
        job_fail(job, 2, NULL);
        return NULL;
    }
    while ((c = job_next(job)) >= 0)
        if (job->run_chunk(job, scratch, c) < 0)
            break;
    free(scratch);
    return NULL;
}

/* Run every chunk on up to ``n_threads`` threads (the caller's included); GIL released. */
static int job_run(job_t *job, int64_t n_threads)
{
    pthread_t *tids = NULL;
    int64_t started = 0;

    job->next = 0;
    job->failed = 0;
    job->error[0] = '\0';
    if (job->n_chunks <= 0)
        return 0;
    if (pthread_mutex_init(&job->lock, NULL) != 0) {
        PyErr_SetString(PyExc_RuntimeError, "could not initialise a mutex");
        return -1;
    }
    if (n_threads > job->n_chunks)
        n_threads = job->n_chunks;
    Py_BEGIN_ALLOW_THREADS
    if (n_threads > 1)
        tids = (pthread_t *)malloc(sizeof(pthread_t) * (size_t)(n_threads - 1));
    if (tids)
        for (int64_t t = 0; t < n_threads - 1; t++)
            if (pthread_create(&tids[started], NULL, job_worker, job) == 0)
                started++;  /* a thread that cannot start leaves its chunks to the others */
    job_worker(job);
    for (int64_t t = 0; t < started; t++)
        pthread_join(tids[t], NULL);
    free(tids);
    Py_END_ALLOW_THREADS
    pthread_mutex_destroy(&job->lock);
    if (job->failed == 2) {
        PyErr_NoMemory();
        return -1;
    }
    if (job->failed) {
        PyErr_SetString(PyExc_ValueError, job->error);
        return -1;
    }
    return 0;
}

static int check_threads(int64_t chunks, int64_t threads)
{
    if (chunks < 1 || threads < 1) {
        PyErr_Format(PyExc_ValueError, "chunks and threads must be >= 1, got %lld and %lld",
                     (long long)chunks, (long long)threads);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ similarity */

/* Similarity of one pair from its co-rated sums (llmcf.cf._kernels._finalise). */
static inline double finalise(int kind, int64_t n, double sab, double saa, double sbb, double sa,
                              double sb, double sdd, int64_t min_support, double shrinkage)
{
    double sim, den;
    if (n < min_support || n == 0)
        return 0.0;
    const double dn = (double)n;
    if (kind == MSD) {
        sim = 1.0 / (sdd / dn + 1.0);
    }
    else if (kind == PEARSON) {
        double num = dn * sab - sa * sb;
        den = sqrt((dn * saa - sa * sa) * (dn * sbb - sb * sb));
        if (den == 0.0)
            return 0.0;
        sim = num / den;
    }
    else { /* cosine family: cosine, pearson_baseline, adjusted_cosine */
        den = sqrt(saa * sbb);
        if (den == 0.0)
            return 0.0;
        sim = sab / den;
    }
    if (shrinkage > 0.0)
        sim *= (dn - 1.0) / (dn - 1.0 + shrinkage);
    return sim;
}

/* Co-rated sums of row x against one other row; MSD keeps sum (a - b)^2 in ``ab``. */
typedef struct {
    int64_t n;
    double ab, aa, bb, a, b;
} acc_t;

typedef struct {
    job_t base;
    int64_t n_x, n_y, nnz_x, nnz_y;
    const int64_t *x_indptr, *x_indices, *y_indptr, *y_indices;
    const double *x_values, *y_values;
    int kind;
    int64_t min_support;
    double shrinkage;
    /* dense_similarity */
    double *out;
    /* topk_similarity */
    const int64_t *rows;
    int64_t n_rows, k;
    double min_sim;
    int32_t *out_idx;
    double *out_sim;
} sim_job_t;

/* an entry of a bounded top list: similarity and neighbour (topk) or deviation (predict) */
typedef struct {
    double sim;
    int64_t idx;
} top_t;

typedef struct {
    double sim, dev;
} kept_t;

/* scratch of a similarity thread: acc[n_x] | touched[n_x] | top[k] */
static size_t sim_scratch_bytes(int64_t n_x, int64_t k)
{
    return (size_t)n_x * (sizeof(acc_t) + sizeof(int64_t)) + (size_t)k * sizeof(top_t);
}

/* first position in [lo, hi) whose value is > x (numpy's searchsorted side="right") */
static inline int64_t upper_bound(const int64_t *values, int64_t lo, int64_t hi, int64_t x)
{
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (values[mid] <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/*
 * Add the co-rated sums of row x against the other rows into ``acc`` (y_indices rows sorted by
 * x). With ``first_after`` only rows x' > x are visited (the upper triangle). Returns the number
 * of touched rows, whose ids are in touched[:count], or -1 after reporting a bad index.
 */
static inline __attribute__((always_inline)) int64_t
accumulate_row_kind(sim_job_t *j, int64_t x, int first_after, acc_t *acc, int64_t *touched,
                    const int kind)
{
    const int64_t *x_indices = j->x_indices, *y_indptr = j->y_indptr, *y_indices = j->y_indices;
    const double *x_values = j->x_values, *y_values = j->y_values;
    const int64_t n_x = j->n_x, n_y = j->n_y;
    int64_t count = 0;
    int64_t lo = j->x_indptr[x], hi = j->x_indptr[x + 1];

    if (lo < 0 || hi > j->nnz_x) {
        job_fail(&j->base, 1, "x_indptr[%lld:%lld] = (%lld, %lld) is outside 0..%lld",
                 (long long)x, (long long)x + 2, (long long)lo, (long long)hi,
                 (long long)j->nnz_x);
        return -1;
    }
    for (int64_t e = lo; e < hi; e++) {
        const int64_t y = x_indices[e];
        const double a = x_values[e];
        if (y < 0 || y >= n_y) {
            job_fail(&j->base, 1, "x_indices[%lld] = %lld is outside 0..%lld", (long long)e,
                     (long long)y, (long long)n_y - 1);
            return -1;
        }
        int64_t start = y_indptr[y];
        const int64_t end = y_indptr[y + 1];
        if (start < 0 || end > j->nnz_y) {
            job_fail(&j->base, 1, "y_indptr[%lld:%lld] = (%lld, %lld) is outside 0..%lld",
                     (long long)y, (long long)y + 2, (long long)start, (long long)end,
                     (long long)j->nnz_y);
            return -1;
        }
        if (first_after)
            start = upper_bound(y_indices, start, end, x);
        for (int64_t f = start; f < end; f++) {
            const int64_t x2 = y_indices[f];
            if (x2 == x)
                continue;
            if ((uint64_t)x2 >= (uint64_t)n_x) {
                job_fail(&j->base, 1, "y_indices[%lld] = %lld is outside 0..%lld", (long long)f,
                         (long long)x2, (long long)n_x - 1);
                return -1;
            }
            const double b = y_values[f];
            acc_t *s = &acc[x2];
            if (s->n == 0)
                touched[count++] = x2;
            s->n += 1;
            if (kind == MSD) {
                const double d = a - b;
                s->ab += d * d;
            }
            else {
                s->ab += a * b;
                s->aa += a * a;
                s->bb += b * b;
                if (kind == PEARSON) {
                    s->a += a;
                    s->b += b;
                }
            }
        }
    }
    return count;
}

static int64_t accumulate_row(sim_job_t *j, int64_t x, int first_after, acc_t *acc,
                              int64_t *touched)
{
    switch (j->kind) {
    case MSD: return accumulate_row_kind(j, x, first_after, acc, touched, MSD);
    case PEARSON: return accumulate_row_kind(j, x, first_after, acc, touched, PEARSON);
    default: return accumulate_row_kind(j, x, first_after, acc, touched, COSINE);
    }
}

/* finalise the pair (x, x2) from acc[x2] and clear the accumulator */
static inline double take_pair(const sim_job_t *j, acc_t *s)
{
    double sim;
    if (j->kind == MSD)
        sim = finalise(j->kind, s->n, 0.0, 0.0, 0.0, 0.0, 0.0, s->ab, j->min_support,
                       j->shrinkage);
    else
        sim = finalise(j->kind, s->n, s->ab, s->aa, s->bb, s->a, s->b, 0.0, j->min_support,
                       j->shrinkage);
    s->n = 0;
    s->ab = 0.0;
    s->aa = 0.0;
    s->bb = 0.0;
    s->a = 0.0;
    s->b = 0.0;
    return sim;
}

static int dense_chunk(job_t *job, void *scratch, int64_t c)
{
    sim_job_t *j = (sim_job_t *)job;
    acc_t *acc = (acc_t *)scratch;
    int64_t *touched = (int64_t *)(acc + j->n_x);
    const int64_t n_x = j->n_x;
    double *out = j->out;

    for (int64_t x = c; x < n_x; x += job->n_chunks) {
        const int64_t count = accumulate_row(j, x, 1, acc, touched);
        if (count < 0)
            return -1;
        for (int64_t t = 0; t < count; t++) {
            const int64_t x2 = touched[t];
            const double s = take_pair(j, &acc[x2]);
            out[x * n_x + x2] = s;
            out[x2 * n_x + x] = s;
        }
        out[x * n_x + x] = 1.0;
    }
    return 0;
}

static int topk_chunk(job_t *job, void *scratch, int64_t c)
{
    sim_job_t *j = (sim_job_t *)job;
    const int64_t n_x = j->n_x, k = j->k;
    acc_t *acc = (acc_t *)scratch;
    int64_t *touched = (int64_t *)(acc + n_x);
    top_t *top = (top_t *)(touched + n_x);

    for (int64_t r = c; r < j->n_rows; r += job->n_chunks) {
        const int64_t x = j->rows[r];
        if (x < 0 || x >= n_x) {
            job_fail(job, 1, "rows[%lld] = %lld is outside 0..%lld", (long long)r, (long long)x,
                     (long long)n_x - 1);
            return -1;
        }
        const int64_t count = accumulate_row(j, x, 0, acc, touched);
        if (count < 0)
            return -1;
        int64_t m = 0;
        for (int64_t t = 0; t < count; t++) {
            const int64_t x2 = touched[t];
            const double s = take_pair(j, &acc[x2]);
            if (s <= j->min_sim)
                continue;
            if (m == k && (s < top[k - 1].sim || (s == top[k - 1].sim && x2 > top[k - 1].idx)))
                continue;
            /* the newcomer goes before every kept entry that ranks after it (lower similarity,
               or equal similarity and higher index); the last slot drops out when full */
            int64_t pos = m < k ? m : k - 1;
            while (pos > 0 &&
                   (top[pos - 1].sim < s || (top[pos - 1].sim == s && top[pos - 1].idx > x2))) {
                top[pos] = top[pos - 1];
                pos--;
            }
            top[pos].sim = s;
            top[pos].idx = x2;
            if (m < k)
                m++;
        }
        int32_t *oi = j->out_idx + r * k;
        double *os = j->out_sim + r * k;
        for (int64_t t = 0; t < m; t++) {
            oi[t] = (int32_t)top[t].idx;
            os[t] = top[t].sim;
        }
        for (int64_t t = m; t < k; t++) {
            oi[t] = -1;
            os[t] = 0.0;
        }
    }
    return 0;
}

enum { A_XPTR, A_XIDX, A_XVAL, A_YPTR, A_YIDX, A_YVAL, A_OUT, A_OUT2, A_ROWS, N_SIM_ARRAYS };

/* acquire and check the CSR pieces shared by both similarity kernels */
static int sim_layout(sim_job_t *j, arr_t *a, int64_t n_x, PyObject *x_indptr,
                      PyObject *x_indices, PyObject *x_values, PyObject *y_indptr,
                      PyObject *y_indices, PyObject *y_values, int kind)
{
    if (n_x < 0) {
        PyErr_Format(PyExc_ValueError, "n_x must be >= 0, got %lld", (long long)n_x);
        return -1;
    }
    if (kind < COSINE || kind > ADJUSTED_COSINE) {
        PyErr_Format(PyExc_ValueError, "unknown similarity code %d (valid: 0..4)", kind);
        return -1;
    }
    if (acquire(x_indptr, "x_indptr", I64, 1, 0, &a[A_XPTR]) < 0 ||
        acquire(x_indices, "x_indices", I64, 1, 0, &a[A_XIDX]) < 0 ||
        acquire(x_values, "x_values", F64, 1, 0, &a[A_XVAL]) < 0 ||
        acquire(y_indptr, "y_indptr", I64, 1, 0, &a[A_YPTR]) < 0 ||
        acquire(y_indices, "y_indices", I64, 1, 0, &a[A_YIDX]) < 0 ||
        acquire(y_values, "y_values", F64, 1, 0, &a[A_YVAL]) < 0)
        return -1;
    if (check_len(&a[A_XPTR], "x_indptr", n_x + 1, "n_x + 1") < 0 ||
        check_len(&a[A_XVAL], "x_values", dim(&a[A_XIDX], 0), "len(x_indices)") < 0 ||
        check_len(&a[A_YVAL], "y_values", dim(&a[A_YIDX], 0), "len(y_indices)") < 0)
        return -1;
    if (dim(&a[A_YPTR], 0) < 1) {
        PyErr_SetString(PyExc_ValueError, "y_indptr must have at least one entry");
        return -1;
    }
    j->n_x = n_x;
    j->n_y = dim(&a[A_YPTR], 0) - 1;
    j->nnz_x = dim(&a[A_XIDX], 0);
    j->nnz_y = dim(&a[A_YIDX], 0);
    j->x_indptr = (const int64_t *)a[A_XPTR].view.buf;
    j->x_indices = (const int64_t *)a[A_XIDX].view.buf;
    j->x_values = (const double *)a[A_XVAL].view.buf;
    j->y_indptr = (const int64_t *)a[A_YPTR].view.buf;
    j->y_indices = (const int64_t *)a[A_YIDX].view.buf;
    j->y_values = (const double *)a[A_YVAL].view.buf;
    j->kind = kind;
    return 0;
}

PyDoc_STRVAR(dense_similarity_doc,
"dense_similarity(n_x, x_indptr, x_indices, x_values, y_indptr, y_indices, y_values, kind,\n"
"                 min_support, shrinkage, out, chunks, threads)\n"
"--\n\n"
"Fill the symmetric (n_x, n_x) float64 matrix ``out`` (zeroed by the caller) with every\n"
"similarity, diagonal 1. Each pair is computed once (x < x') and mirrored; ``y_indices`` rows\n"
"must be sorted by x.");

static PyObject *py_dense_similarity(PyObject *self, PyObject *args)
{
    long long n_x, min_support, chunks, threads;
    int kind;
    double shrinkage;
    PyObject *o[7];
    arr_t a[N_SIM_ARRAYS];
    sim_job_t j;
    PyObject *result = NULL;

    (void)self;
    memset(a, 0, sizeof a);
    if (!PyArg_ParseTuple(args, "LOOOOOOiLdOLL:dense_similarity", &n_x, &o[0], &o[1], &o[2],
                          &o[3], &o[4], &o[5], &kind, &min_support, &shrinkage, &o[6], &chunks,
                          &threads))
        return NULL;
    memset(&j, 0, sizeof j);
    if (check_threads(chunks, threads) < 0 ||
        sim_layout(&j, a, n_x, o[0], o[1], o[2], o[3], o[4], o[5], kind) < 0 ||
        acquire(o[6], "out", F64, 2, 1, &a[A_OUT]) < 0 ||
        check_shape2(&a[A_OUT], "out", n_x, n_x) < 0)
        goto done;
    j.min_support = min_support;
    j.shrinkage = shrinkage;
    j.out = (double *)a[A_OUT].view.buf;
    j.base.run_chunk = dense_chunk;
    j.base.scratch_bytes = sim_scratch_bytes(n_x, 0);
    j.base.n_chunks = n_x < chunks ? n_x : chunks;
    if (job_run(&j.base, threads) < 0)
        goto done;
    result = Py_None;
    Py_INCREF(result);
done:
    release_all(a, N_SIM_ARRAYS);
    return result;
}

PyDoc_STRVAR(topk_similarity_doc,
"topk_similarity(rows, n_x, x_indptr, x_indices, x_values, y_indptr, y_indices, y_values,\n"
"                kind, min_support, shrinkage, k, min_sim, out_idx, out_sim, chunks, threads)\n"
"--\n\n"
"For each of ``rows`` keep its ``k`` most similar other rows with similarity > min_sim in\n"
"``out_idx[r]`` (int32, -1 padded) and ``out_sim[r]`` (float64), by decreasing similarity,\n"
"ties broken by lower index (a bounded insertion list).");

static PyObject *py_topk_similarity(PyObject *self, PyObject *args)
{
    long long n_x, min_support, k, chunks, threads;
    int kind;
    double shrinkage, min_sim;
    PyObject *o[10];
    arr_t a[N_SIM_ARRAYS];
    sim_job_t j;
    PyObject *result = NULL;

    (void)self;
    memset(a, 0, sizeof a);
    if (!PyArg_ParseTuple(args, "OLOOOOOOiLdLdOOLL:topk_similarity", &o[7], &n_x, &o[0], &o[1],
                          &o[2], &o[3], &o[4], &o[5], &kind, &min_support, &shrinkage, &k,
                          &min_sim, &o[8], &o[9], &chunks, &threads))
        return NULL;
    memset(&j, 0, sizeof j);
    if (k < 0) {
        PyErr_Format(PyExc_ValueError, "k must be >= 0, got %lld", k);
        return NULL;
    }
    if (check_threads(chunks, threads) < 0 ||
        sim_layout(&j, a, n_x, o[0], o[1], o[2], o[3], o[4], o[5], kind) < 0 ||
        acquire(o[7], "rows", I64, 1, 0, &a[A_ROWS]) < 0 ||
        acquire(o[8], "out_idx", I32, 2, 1, &a[A_OUT]) < 0 ||
        acquire(o[9], "out_sim", F64, 2, 1, &a[A_OUT2]) < 0)
        goto done;
    j.n_rows = dim(&a[A_ROWS], 0);
    if (check_shape2(&a[A_OUT], "out_idx", j.n_rows, k) < 0 ||
        check_shape2(&a[A_OUT2], "out_sim", j.n_rows, k) < 0)
        goto done;
    if (n_x > (long long)INT32_MAX + 1) {
        PyErr_Format(PyExc_ValueError, "n_x = %lld does not fit the int32 out_idx", n_x);
        goto done;
    }
    j.min_support = min_support;
    j.shrinkage = shrinkage;
    j.rows = (const int64_t *)a[A_ROWS].view.buf;
    j.k = k;
    j.min_sim = min_sim;
    j.out_idx = (int32_t *)a[A_OUT].view.buf;
    j.out_sim = (double *)a[A_OUT2].view.buf;
    if (k > 0) {
        j.base.run_chunk = topk_chunk;
        j.base.scratch_bytes = sim_scratch_bytes(n_x, k);
        j.base.n_chunks = j.n_rows < chunks ? j.n_rows : chunks;
        if (job_run(&j.base, threads) < 0)
            goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    release_all(a, N_SIM_ARRAYS);
    return result;
}

/* ------------------------------------------------------------------ predictions */

typedef struct {
    job_t base;
    int64_t n_pairs, n_x, n_ks, k_max, cap, n_nbr;
    const int64_t *px, *py, *y_indptr, *y_indices, *ks;
    const double *y_dev, *dense_sim, *nbr_sim, *offset, *scale;
    const int32_t *nbr_idx;
    int use_dense;
    int64_t min_k;
    double *out_est;
    int64_t *out_k;
} pred_job_t;

/* scratch of a prediction thread: top[cap] | lookup[n_x] (sparse mode) */
static int predict_chunk(job_t *job, void *scratch, int64_t c)
{
    pred_job_t *j = (pred_job_t *)job;
    const int64_t n_ks = j->n_ks, k_max = j->k_max, n_x = j->n_x, n_nbr = j->n_nbr;
    kept_t *top = (kept_t *)scratch;
    double *lookup = (double *)(top + j->cap);

    for (int64_t p = c; p < j->n_pairs; p += job->n_chunks) {
        const int64_t x = j->px[p], y = j->py[p];
        double *est = j->out_est + p * n_ks;
        int64_t *used = j->out_k + p * n_ks;
        if (x < 0 || y < 0) {
            for (int64_t q = 0; q < n_ks; q++) {
                est[q] = NAN;
                used[q] = 0;
            }
            continue;
        }
        const int32_t *nbr_row = j->use_dense ? NULL : j->nbr_idx + x * n_nbr;
        if (!j->use_dense)
            for (int64_t q = 0; q < n_nbr; q++) {
                const int64_t nb = nbr_row[q];
                if (nb < 0)
                    break;
                if (nb >= n_x) {
                    job_fail(job, 1, "nbr_idx[%lld, %lld] = %lld is outside 0..%lld",
                             (long long)x, (long long)q, (long long)nb, (long long)n_x - 1);
                    return -1;
                }
                lookup[nb] = j->nbr_sim[x * n_nbr + q];
            }
        int64_t m = 0;
        const int64_t lo = j->y_indptr[y], hi = j->y_indptr[y + 1];
        for (int64_t e = lo; e < hi; e++) {
            const int64_t x2 = j->y_indices[e];
            double s;
            if ((uint64_t)x2 >= (uint64_t)n_x) {
                job_fail(job, 1, "y_indices[%lld] = %lld is outside 0..%lld", (long long)e,
                         (long long)x2, (long long)n_x - 1);
                return -1;
            }
            if (j->use_dense)
                s = j->dense_sim[x * n_x + x2];
            else if (x2 == x)
                s = 1.0; /* self-similarity, as on the diagonal of the dense matrix */
            else
                s = lookup[x2];
            if (s <= 0.0 || (m == k_max && s <= top[m - 1].sim))
                continue;
            /* the newcomer goes after every kept similarity >= s (so equal similarities keep
               input order); the last slot drops out when the list is full */
            int64_t pos = m < k_max ? m : k_max - 1;
            while (pos > 0 && top[pos - 1].sim < s) {
                top[pos] = top[pos - 1];
                pos--;
            }
            top[pos].sim = s;
            top[pos].dev = j->y_dev[e];
            if (m < k_max)
                m++;
        }
        if (!j->use_dense)
            for (int64_t q = 0; q < n_nbr; q++) {
                const int64_t nb = nbr_row[q];
                if (nb < 0)
                    break;
                lookup[nb] = 0.0;
            }
        double sum_sim = 0.0, sum_dev = 0.0;
        int64_t q = 0;
        for (int64_t t = 0; t <= m; t++) {
            /* emit the estimates of every k reached before adding neighbour t */
            while (q < n_ks && (j->ks[q] == t || t == m)) {
                if (t >= j->min_k && t > 0)
                    est[q] = j->offset[p] + sum_dev / sum_sim * j->scale[p];
                else
                    est[q] = NAN;
                used[q] = t;
                q++;
            }
            if (t == m)
                break;
            sum_sim += top[t].sim;
            sum_dev += top[t].sim * top[t].dev;
        }
    }
    return 0;
}

PyDoc_STRVAR(predict_pairs_doc,
"predict_pairs(px, py, y_indptr, y_indices, y_dev, dense_sim, nbr_idx, nbr_sim, use_dense, n_x,\n"
"              ks, min_k, offset, scale, out_est, out_k, chunks, threads)\n"
"--\n\n"
"Neighbourhood estimates of the pairs (px[p], py[p]) at every k of the ascending ``ks``:\n"
"est = offset[p] + sum(sim * dev) / sum(sim) * scale[p] over the first k kept candidates.\n"
"``dense_sim`` is used when ``use_dense``, else ``nbr_idx``/``nbr_sim`` (the other is\n"
"ignored). Pairs with px < 0 or py < 0, or fewer than ``min_k`` neighbours, get NaN.");

enum { P_PX, P_PY, P_YPTR, P_YIDX, P_YDEV, P_DENSE, P_NIDX, P_NSIM, P_KS, P_OFF, P_SCALE,
       P_EST, P_K, N_PRED_ARRAYS };

static PyObject *py_predict_pairs(PyObject *self, PyObject *args)
{
    long long n_x, min_k, chunks, threads;
    int use_dense;
    PyObject *o_px, *o_py, *o_yptr, *o_yidx, *o_ydev, *o_dense, *o_nidx, *o_nsim, *o_ks, *o_off,
        *o_scale, *o_est, *o_k;
    arr_t a[N_PRED_ARRAYS];
    pred_job_t j;
    PyObject *result = NULL;
    int64_t n_y, cap = 1;

    (void)self;
    memset(a, 0, sizeof a);
    if (!PyArg_ParseTuple(args, "OOOOOOOOpLOLOOOOLL:predict_pairs", &o_px, &o_py, &o_yptr,
                          &o_yidx, &o_ydev, &o_dense, &o_nidx, &o_nsim, &use_dense, &n_x, &o_ks,
                          &min_k, &o_off, &o_scale, &o_est, &o_k, &chunks, &threads))
        return NULL;
    memset(&j, 0, sizeof j);
    if (n_x < 0) {
        PyErr_Format(PyExc_ValueError, "n_x must be >= 0, got %lld", n_x);
        return NULL;
    }
    if (check_threads(chunks, threads) < 0 ||
        acquire(o_px, "px", I64, 1, 0, &a[P_PX]) < 0 ||
        acquire(o_py, "py", I64, 1, 0, &a[P_PY]) < 0 ||
        acquire(o_yptr, "y_indptr", I64, 1, 0, &a[P_YPTR]) < 0 ||
        acquire(o_yidx, "y_indices", I64, 1, 0, &a[P_YIDX]) < 0 ||
        acquire(o_ydev, "y_dev", F64, 1, 0, &a[P_YDEV]) < 0 ||
        acquire(o_ks, "ks", I64, 1, 0, &a[P_KS]) < 0 ||
        acquire(o_off, "offset", F64, 1, 0, &a[P_OFF]) < 0 ||
        acquire(o_scale, "scale", F64, 1, 0, &a[P_SCALE]) < 0 ||
        acquire(o_est, "out_est", F64, 2, 1, &a[P_EST]) < 0 ||
        acquire(o_k, "out_k", I64, 2, 1, &a[P_K]) < 0)
        goto done;
    if (use_dense) {
        if (acquire(o_dense, "dense_sim", F64, 2, 0, &a[P_DENSE]) < 0 ||
            check_shape2(&a[P_DENSE], "dense_sim", n_x, n_x) < 0)
            goto done;
        j.dense_sim = (const double *)a[P_DENSE].view.buf;
    }
    else {
        if (acquire(o_nidx, "nbr_idx", I32, 2, 0, &a[P_NIDX]) < 0 ||
            acquire(o_nsim, "nbr_sim", F64, 2, 0, &a[P_NSIM]) < 0 ||
            check_shape2(&a[P_NIDX], "nbr_idx", n_x, dim(&a[P_NIDX], 1)) < 0 ||
            check_shape2(&a[P_NSIM], "nbr_sim", n_x, dim(&a[P_NIDX], 1)) < 0)
            goto done;
        j.n_nbr = dim(&a[P_NIDX], 1);
        j.nbr_idx = (const int32_t *)a[P_NIDX].view.buf;
        j.nbr_sim = (const double *)a[P_NSIM].view.buf;
    }
    j.n_pairs = dim(&a[P_PX], 0);
    j.n_ks = dim(&a[P_KS], 0);
    if (check_len(&a[P_PY], "py", j.n_pairs, "len(px)") < 0 ||
        check_len(&a[P_YDEV], "y_dev", dim(&a[P_YIDX], 0), "len(y_indices)") < 0 ||
        check_len(&a[P_OFF], "offset", j.n_pairs, "len(px)") < 0 ||
        check_len(&a[P_SCALE], "scale", j.n_pairs, "len(px)") < 0 ||
        check_shape2(&a[P_EST], "out_est", j.n_pairs, j.n_ks) < 0 ||
        check_shape2(&a[P_K], "out_k", j.n_pairs, j.n_ks) < 0)
        goto done;
    if (dim(&a[P_YPTR], 0) < 1) {
        PyErr_SetString(PyExc_ValueError, "y_indptr must have at least one entry");
        goto done;
    }
    n_y = dim(&a[P_YPTR], 0) - 1;
    j.ks = (const int64_t *)a[P_KS].view.buf;
    if (j.n_ks == 0) {
        PyErr_SetString(PyExc_ValueError, "ks must not be empty");
        goto done;
    }
    for (int64_t q = 0; q < j.n_ks; q++)
        if (j.ks[q] < 1 || (q > 0 && j.ks[q] < j.ks[q - 1])) {
            PyErr_Format(PyExc_ValueError, "ks must be positive and ascending, got ks[%lld] = %lld",
                         (long long)q, (long long)j.ks[q]);
            goto done;
        }
    j.k_max = j.ks[j.n_ks - 1];
    j.px = (const int64_t *)a[P_PX].view.buf;
    j.py = (const int64_t *)a[P_PY].view.buf;
    j.y_indptr = (const int64_t *)a[P_YPTR].view.buf;
    j.y_indices = (const int64_t *)a[P_YIDX].view.buf;
    /* check every pair's row once; the kept list never holds more than a row's candidates */
    for (int64_t p = 0; p < j.n_pairs; p++) {
        const int64_t x = j.px[p], y = j.py[p];
        if (x < 0 || y < 0)
            continue;
        if (x >= n_x || y >= n_y) {
            PyErr_Format(PyExc_ValueError,
                         "pair %lld = (%lld, %lld) is outside n_x = %lld, n_y = %lld",
                         (long long)p, (long long)x, (long long)y, n_x, (long long)n_y);
            goto done;
        }
        const int64_t lo = j.y_indptr[y], hi = j.y_indptr[y + 1];
        if (lo < 0 || hi > dim(&a[P_YIDX], 0)) {
            PyErr_Format(PyExc_ValueError, "y_indptr[%lld:%lld] = (%lld, %lld) is outside 0..%zd",
                         (long long)y, (long long)y + 2, (long long)lo, (long long)hi,
                         dim(&a[P_YIDX], 0));
            goto done;
        }
        if (hi - lo > cap)
            cap = hi - lo;
    }
    j.cap = cap < j.k_max ? cap : j.k_max;
    j.n_x = n_x;
    j.y_dev = (const double *)a[P_YDEV].view.buf;
    j.use_dense = use_dense;
    j.min_k = min_k;
    j.offset = (const double *)a[P_OFF].view.buf;
    j.scale = (const double *)a[P_SCALE].view.buf;
    j.out_est = (double *)a[P_EST].view.buf;
    j.out_k = (int64_t *)a[P_K].view.buf;
    j.base.run_chunk = predict_chunk;
    j.base.scratch_bytes =
        sizeof(kept_t) * (size_t)j.cap + sizeof(double) * (size_t)(use_dense ? 0 : n_x);
    j.base.n_chunks = j.n_pairs < chunks ? j.n_pairs : chunks;
    if (job_run(&j.base, threads) < 0)
        goto done;
    result = Py_None;
    Py_INCREF(result);
done:
    release_all(a, N_PRED_ARRAYS);
    return result;
}

/* ------------------------------------------------------------------ baselines */

enum { B_U, B_I, B_R, B_BU, B_BI, B_DI, B_DU, N_BASE_ARRAYS };

/* acquire users, items, ratings, bu, bi and check every index (den_i/den_u when given) */
static int baseline_arrays(arr_t *a, PyObject *users, PyObject *items, PyObject *ratings,
                           PyObject *bu, PyObject *bi, PyObject *den_i, PyObject *den_u)
{
    if (acquire(users, "users", I64, 1, 0, &a[B_U]) < 0 ||
        acquire(items, "items", I64, 1, 0, &a[B_I]) < 0 ||
        acquire(ratings, "ratings", F64, 1, 0, &a[B_R]) < 0 ||
        acquire(bu, "bu", F64, 1, 1, &a[B_BU]) < 0 || acquire(bi, "bi", F64, 1, 1, &a[B_BI]) < 0)
        return -1;
    if (den_i && (acquire(den_i, "den_i", F64, 1, 0, &a[B_DI]) < 0 ||
                  check_len(&a[B_DI], "den_i", dim(&a[B_BI], 0), "len(bi)") < 0))
        return -1;
    if (den_u && (acquire(den_u, "den_u", F64, 1, 0, &a[B_DU]) < 0 ||
                  check_len(&a[B_DU], "den_u", dim(&a[B_BU], 0), "len(bu)") < 0))
        return -1;
    const Py_ssize_t n = dim(&a[B_U], 0), n_u = dim(&a[B_BU], 0), n_i = dim(&a[B_BI], 0);
    if (check_len(&a[B_I], "items", n, "len(users)") < 0 ||
        check_len(&a[B_R], "ratings", n, "len(users)") < 0)
        return -1;
    const int64_t *u = (const int64_t *)a[B_U].view.buf, *i = (const int64_t *)a[B_I].view.buf;
    for (Py_ssize_t t = 0; t < n; t++)
        if (u[t] < 0 || u[t] >= n_u || i[t] < 0 || i[t] >= n_i) {
            PyErr_Format(PyExc_ValueError,
                         "rating %zd: (user %lld, item %lld) is outside len(bu) = %zd, "
                         "len(bi) = %zd",
                         t, (long long)u[t], (long long)i[t], n_u, n_i);
            return -1;
        }
    return 0;
}

PyDoc_STRVAR(als_epochs_doc,
"als_epochs(users, items, ratings, mu, bu, bi, den_i, den_u, n_epochs)\n"
"--\n\n"
"ALS sweeps of the baselines, updating ``bu`` and ``bi`` in place; sums run over the ratings\n"
"in input order: b_i = sum (r - mu - b_u) / den_i, then b_u = sum (r - mu - b_i) / den_u.");

static PyObject *py_als_epochs(PyObject *self, PyObject *args)
{
    PyObject *o[7];
    double mu;
    long long n_epochs;
    arr_t a[N_BASE_ARRAYS];
    PyObject *result = NULL;

    (void)self;
    memset(a, 0, sizeof a);
    if (!PyArg_ParseTuple(args, "OOOdOOOOL:als_epochs", &o[0], &o[1], &o[2], &mu, &o[3], &o[4],
                          &o[5], &o[6], &n_epochs))
        return NULL;
    if (baseline_arrays(a, o[0], o[1], o[2], o[3], o[4], o[5], o[6]) < 0)
        goto done;
    {
        const Py_ssize_t n = dim(&a[B_U], 0), n_u = dim(&a[B_BU], 0), n_i = dim(&a[B_BI], 0);
        const int64_t *users = (const int64_t *)a[B_U].view.buf;
        const int64_t *items = (const int64_t *)a[B_I].view.buf;
        const double *ratings = (const double *)a[B_R].view.buf;
        const double *den_i = (const double *)a[B_DI].view.buf;
        const double *den_u = (const double *)a[B_DU].view.buf;
        double *bu = (double *)a[B_BU].view.buf, *bi = (double *)a[B_BI].view.buf;
        double *dev_i = (double *)malloc(sizeof(double) * (size_t)(n_i ? n_i : 1));
        double *dev_u = (double *)malloc(sizeof(double) * (size_t)(n_u ? n_u : 1));
        if (!dev_i || !dev_u) {
            free(dev_i);
            free(dev_u);
            PyErr_NoMemory();
            goto done;
        }
        Py_BEGIN_ALLOW_THREADS
        for (long long epoch = 0; epoch < n_epochs; epoch++) {
            for (Py_ssize_t i = 0; i < n_i; i++)
                dev_i[i] = 0.0;
            for (Py_ssize_t t = 0; t < n; t++)
                dev_i[items[t]] += (ratings[t] - mu) - bu[users[t]];
            for (Py_ssize_t i = 0; i < n_i; i++)
                bi[i] = dev_i[i] / den_i[i];
            for (Py_ssize_t u = 0; u < n_u; u++)
                dev_u[u] = 0.0;
            for (Py_ssize_t t = 0; t < n; t++)
                dev_u[users[t]] += (ratings[t] - mu) - bi[items[t]];
            for (Py_ssize_t u = 0; u < n_u; u++)
                bu[u] = dev_u[u] / den_u[u];
        }
        Py_END_ALLOW_THREADS
        free(dev_i);
        free(dev_u);
    }
    result = Py_None;
    Py_INCREF(result);
done:
    release_all(a, N_BASE_ARRAYS);
    return result;
}

PyDoc_STRVAR(sgd_epochs_doc,
"sgd_epochs(users, items, ratings, mu, bu, bi, n_epochs, reg, lr)\n"
"--\n\n"
"SGD passes over the ratings in input order, updating ``bu`` and ``bi`` in place:\n"
"e = r - (mu + b_u + b_i); b_u += lr (e - reg b_u); b_i += lr (e - reg b_i).");

static PyObject *py_sgd_epochs(PyObject *self, PyObject *args)
{
    PyObject *o[5];
    double mu, reg, lr;
    long long n_epochs;
    arr_t a[N_BASE_ARRAYS];
    PyObject *result = NULL;

    (void)self;
    memset(a, 0, sizeof a);
    if (!PyArg_ParseTuple(args, "OOOdOOLdd:sgd_epochs", &o[0], &o[1], &o[2], &mu, &o[3], &o[4],
                          &n_epochs, &reg, &lr))
        return NULL;
    if (baseline_arrays(a, o[0], o[1], o[2], o[3], o[4], NULL, NULL) < 0)
        goto done;
    {
        const Py_ssize_t n = dim(&a[B_U], 0);
        const int64_t *users = (const int64_t *)a[B_U].view.buf;
        const int64_t *items = (const int64_t *)a[B_I].view.buf;
        const double *ratings = (const double *)a[B_R].view.buf;
        double *bu = (double *)a[B_BU].view.buf, *bi = (double *)a[B_BI].view.buf;
        Py_BEGIN_ALLOW_THREADS
        for (long long epoch = 0; epoch < n_epochs; epoch++)
            for (Py_ssize_t t = 0; t < n; t++) {
                const int64_t u = users[t], i = items[t];
                const double err = ratings[t] - (mu + bu[u] + bi[i]);
                bu[u] += lr * (err - reg * bu[u]);
                bi[i] += lr * (err - reg * bi[i]);
            }
        Py_END_ALLOW_THREADS
    }
    result = Py_None;
    Py_INCREF(result);
done:
    release_all(a, N_BASE_ARRAYS);
    return result;
}

/* ------------------------------------------------------------------ finalise (for tests) */

PyDoc_STRVAR(finalise_doc,
"finalise(kind, n, sab, saa, sbb, sa, sb, sdd, min_support, shrinkage)\n"
"--\n\n"
"The similarity of one pair from its co-rated sums, exactly as the kernels compute it.");

static PyObject *py_finalise(PyObject *self, PyObject *args)
{
    int kind;
    long long n, min_support;
    double sab, saa, sbb, sa, sb, sdd, shrinkage;

    (void)self;
    if (!PyArg_ParseTuple(args, "iLddddddLd:finalise", &kind, &n, &sab, &saa, &sbb, &sa, &sb,
                          &sdd, &min_support, &shrinkage))
        return NULL;
    if (kind < COSINE || kind > ADJUSTED_COSINE) {
        PyErr_Format(PyExc_ValueError, "unknown similarity code %d (valid: 0..4)", kind);
        return NULL;
    }
    return PyFloat_FromDouble(
        finalise(kind, n, sab, saa, sbb, sa, sb, sdd, min_support, shrinkage));
}

/* ------------------------------------------------------------------ module */

static PyMethodDef methods[] = {
    {"dense_similarity", py_dense_similarity, METH_VARARGS, dense_similarity_doc},
    {"topk_similarity", py_topk_similarity, METH_VARARGS, topk_similarity_doc},
    {"predict_pairs", py_predict_pairs, METH_VARARGS, predict_pairs_doc},
    {"als_epochs", py_als_epochs, METH_VARARGS, als_epochs_doc},
    {"sgd_epochs", py_sgd_epochs, METH_VARARGS, sgd_epochs_doc},
    {"finalise", py_finalise, METH_VARARGS, finalise_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "llmcf.cf._ckernels",
    "Compiled kNN kernels (C, buffer protocol, POSIX threads); use them through "
    "llmcf.cf._kernels, which documents the formulas.",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__ckernels(void) { return PyModule_Create(&module); }
