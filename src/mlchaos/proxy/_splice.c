/*
 * The proxy's per-response hot path for JSON corruption, in C.
 *
 * Why: at 100 % corruption the Python rewrite (find the header block, check the framing,
 * locate the field, splice, re-frame) cost ~13-16 us of proxy CPU per response on top of a
 * ~19 us pass-through, against a goal of <= 1.5x; no library locates a value's byte span
 * without re-serialising the document (see benchmarks/bench_splice.py for the A/B).
 *
 * What: exactly the common case of http_wire.corrupt_response + jsonspan.first for one
 * wildcard-free path whose replacement is a constant (null, NaN, a captured stale value).
 * Every other case returns None and the Python code handles it, so the two cannot disagree
 * on anything but speed; tests/proxy/test_splice.py checks both on generated documents.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* First index of needle in s[from:to], or -1.  memchr on the first byte, then memcmp: glibc's
 * memmem (two-way) costs ~500 instructions per call on these short needles and ~700-byte texts. */
static Py_ssize_t find(const char *s, Py_ssize_t from, Py_ssize_t to, const char *needle, Py_ssize_t len)
{
    if (len <= 0 || from > to)
        return len == 0 ? from : -1;
    const char *p = s + from, *last = s + to - len;
    while (p <= last) {
        p = memchr(p, needle[0], (size_t)(last - p + 1));
        if (p == NULL)
            return -1;
        if (memcmp(p + 1, needle + 1, (size_t)(len - 1)) == 0)
            return p - s;
        p++;
    }
    return -1;
}

/* The header block's lines that matter, found in one pass: where "\r\n<name>:" starts, or -1. */
typedef struct {
    Py_ssize_t content_length, content_encoding, transfer_encoding;
} Heads;

static int name_is(const char *p, Py_ssize_t avail, const char *name, Py_ssize_t len)
{
    if (avail <= len || p[len] != ':')
        return 0;
    for (Py_ssize_t k = 0; k < len; k++)
        if (Py_TOLOWER((unsigned char)p[k]) != name[k])
            return 0;
    return 1;
}

static Heads scan_head(const char *head, Py_ssize_t n)
{
    Heads h = {-1, -1, -1};
    const char *p = head, *end = head + n;
    while ((p = memchr(p, '\r', (size_t)(end - p))) != NULL) {
        if (p + 1 < end && p[1] == '\n') {
            const char *name = p + 2;
            Py_ssize_t avail = end - name, i = p - head;
            char c = (char)Py_TOLOWER((unsigned char)(avail > 0 ? *name : 0));
            if (c == 'c' && h.content_length < 0 && name_is(name, avail, "content-length", 14))
                h.content_length = i;
            else if (c == 'c' && h.content_encoding < 0 && name_is(name, avail, "content-encoding", 16))
                h.content_encoding = i;
            else if (c == 't' && h.transfer_encoding < 0 && name_is(name, avail, "transfer-encoding", 17))
                h.transfer_encoding = i;
        }
        p++;
    }
    return h;
}

/* Byte classes for the scan before a key candidate: jsonspan's _HARD set, and the quote. */
enum { QUOTE = 1, HARD = 2 };
static unsigned char CLASS[256];

static void init_classes(void)
{
    CLASS['"'] = QUOTE;
    CLASS['['] = CLASS[']'] = CLASS['{'] = CLASS['}'] = CLASS['\\'] = HARD;
}

static int is_ws(unsigned char c) { return c <= 32; } /* as jsonspan.first: any control byte */

static int scalar_byte(unsigned char c)
{
    /* [^,\]}\s] with Python's bytes \s = [ \t\n\r\f\v] */
    return !(c == ',' || c == ']' || c == '}' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
             || c == '\v');
}

/* End of the value at body[i] (jsonspan.first's rules), or -1 for "let Python decide". */
static Py_ssize_t value_end(const char *b, Py_ssize_t n, Py_ssize_t i)
{
    if (i >= n)
        return -1;
    unsigned char c = (unsigned char)b[i];
    if (c == '"') {
        for (Py_ssize_t j = i + 1; j < n; j++) {
            if (b[j] == '\\') {
                if (j + 1 >= n)
                    return -1;
                j++;
            } else if (b[j] == '"') {
                return j + 1;
            }
        }
        return -1;
    }
    if (c == '{' || c == '[') { /* jsonspan._skip_flat: no nested container, no escape */
        const char *close = memchr(b + i + 1, c == '{' ? '}' : ']', (size_t)(n - i - 1));
        if (close == NULL)
            return -1;
        Py_ssize_t end = close - b, quotes = 0;
        for (Py_ssize_t j = i + 1; j < end; j++) {
            char d = b[j];
            if (d == '[' || d == '{' || d == '\\')
                return -1;
            quotes += d == '"';
        }
        return quotes % 2 ? -1 : end + 1;
    }
    Py_ssize_t j = i;
    while (j < n && scalar_byte((unsigned char)b[j]))
        j++;
    return j == i ? -1 : j;
}

/* rewrite(data, needles, replacement) -> bytes | None
 *
 * data: one whole buffered HTTP response; needles: the path's keys as quoted JSON (one per
 * step); replacement: the new value's bytes.  Returns the re-framed response, ``data`` itself
 * when nothing changes, or None when the case is not the simple one (Python then decides).
 */
static PyObject *rewrite(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 3 || !PyBytes_CheckExact(args[0]) || !PyTuple_CheckExact(args[1]) || !PyBytes_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError, "rewrite(data: bytes, needles: tuple[bytes, ...], replacement: bytes)");
        return NULL;
    }
    PyObject *data = args[0], *needles = args[1], *rep = args[2];
    const char *s = PyBytes_AS_STRING(data);
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    Py_ssize_t head_end = find(s, 0, size, "\r\n\r\n", 4);
    if (head_end < 0)
        return Py_NewRef(data);
    Heads heads = scan_head(s, head_end);
    if (heads.content_encoding >= 0 || heads.transfer_encoding >= 0)
        Py_RETURN_NONE;
    const char *b = s + head_end + 4;
    Py_ssize_t n = size - head_end - 4, i = 0;
    while (i < n && is_ws((unsigned char)b[i]))
        i++;
    Py_ssize_t steps = PyTuple_GET_SIZE(needles);
    for (Py_ssize_t k = 0; k < steps; k++) {
        PyObject *nd = PyTuple_GET_ITEM(needles, k);
        if (!PyBytes_CheckExact(nd) || i >= n || b[i] != '{')
            Py_RETURN_NONE;
        Py_ssize_t nlen = PyBytes_GET_SIZE(nd);
        Py_ssize_t pos = find(b, i + 1, n, PyBytes_AS_STRING(nd), nlen);
        if (pos < 0)
            Py_RETURN_NONE;
        unsigned int flags = 0, quotes = 0;
        for (Py_ssize_t j = i + 1; j < pos; j++) {
            unsigned char f = CLASS[(unsigned char)b[j]];
            flags |= f;
            quotes += f & QUOTE;
        }
        if ((flags & HARD) || (quotes & QUOTE))
            Py_RETURN_NONE;
        Py_ssize_t j = pos + nlen;
        while (j < n && is_ws((unsigned char)b[j]))
            j++;
        if (j >= n || b[j] != ':')
            Py_RETURN_NONE;
        i = j + 1;
        while (i < n && is_ws((unsigned char)b[i]))
            i++;
    }
    Py_ssize_t end = value_end(b, n, i);
    if (end < 0)
        Py_RETURN_NONE;
    Py_ssize_t rlen = PyBytes_GET_SIZE(rep);
    if (rlen == end - i && memcmp(b + i, PyBytes_AS_STRING(rep), (size_t)rlen) == 0)
        return Py_NewRef(data);

    /* head without its first Content-Length line, then a fresh one */
    Py_ssize_t cl = heads.content_length, cl_end = head_end;
    if (cl >= 0) {
        Py_ssize_t e = find(s, cl + 2, head_end, "\r\n", 2);
        cl_end = e < 0 ? head_end : e;
    } else {
        cl = cl_end = head_end;
    }
    Py_ssize_t body_len = n - (end - i) + rlen;
    char line[48], digits[24];
    int nd = 0, llen = 18;
    Py_ssize_t v = body_len;
    do {
        digits[nd++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    memcpy(line, "\r\nContent-Length: ", 18);
    while (nd > 0)
        line[llen++] = digits[--nd];
    memcpy(line + llen, "\r\n\r\n", 4);
    llen += 4;
    Py_ssize_t head_len = head_end - (cl_end - cl);
    PyObject *out = PyBytes_FromStringAndSize(NULL, head_len + llen + body_len);
    if (out == NULL)
        return NULL;
    char *o = PyBytes_AS_STRING(out);
    memcpy(o, s, (size_t)cl);
    o += cl;
    memcpy(o, s + cl_end, (size_t)(head_end - cl_end));
    o += head_end - cl_end;
    memcpy(o, line, (size_t)llen);
    o += llen;
    memcpy(o, b, (size_t)i);
    o += i;
    memcpy(o, PyBytes_AS_STRING(rep), (size_t)rlen);
    o += rlen;
    memcpy(o, b + end, (size_t)(n - end));
    return out;
}

static PyMethodDef methods[] = {
    {"rewrite", (PyCFunction)(void (*)(void))rewrite, METH_FASTCALL,
     "rewrite(data, needles, replacement) -> bytes | None: the simple case of corrupt_response, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_splice", NULL, 0, methods};

PyMODINIT_FUNC PyInit__splice(void)
{
    init_classes();
    return PyModule_Create(&module);
}
