/* collector._literals: every occurrence of a fixed set of byte strings in a block, in C.
 *
 * Why: redaction starts by finding its trigger words (about 300: rule keywords, vendor
 * token prefixes, tool names) everywhere in each lower-cased block, overlaps included,
 * because a rule is tried at each of them.  Rust's aho-corasick DFA (ahocorasick_rs) does
 * that byte by byte at about 450 MB/s: with the rest of the redaction, a quarter of the
 * collecting thread's time, on the thread whose every second is taken from compression.
 *
 * How: each word of two bytes or more is anchored at one of its byte pairs, the one least
 * frequent in a sample of the text (the caller's first block): a table of 65536 bits says
 * which pairs anchor some word, so most positions cost one bit test; at an anchor pair the
 * words anchored there are compared whole.  One-byte words have a byte table of their own.
 * Each occurrence of a word contains its anchor pair exactly once at its anchor offset, so
 * every occurrence is found exactly once: the answer is that of collector.literals'
 * pure-Python loop and of the automaton (as a set; tests/test_literals.py compares them).
 *
 * Input is hostile: the words and the block are only read within their bounds, and the
 * answer is bounded by the number of occurrences, which the block's length bounds.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include <stdint.h>

#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define WORDWISE 0           /* the pair index of a loaded word would differ: byte by byte */
#else
#define WORDWISE 1
#endif

#if defined(__GNUC__) || defined(__clang__)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define UNLIKELY(x) (x)
#endif

typedef struct {
    Py_ssize_t index;          /* into the words */
    Py_ssize_t offset;         /* of the anchor pair in the word */
    uint64_t head, mask;       /* the word's first (up to) 8 bytes, as loaded from memory */
} Anchored;

typedef struct {
    Py_ssize_t nwords;
    const unsigned char **words;   /* borrowed from ``owner`` (a tuple of bytes) */
    Py_ssize_t *lengths;
    unsigned char anchors[65536];   /* [a | b << 8]: some word is anchored at the pair a, b */
    Py_ssize_t *singles;            /* the one-byte words (for the block's last byte) */
    Py_ssize_t nsingles;
    unsigned int *bucket_start;     /* 65537 entries: anchored words of pair v are */
    Anchored *anchored;             /* anchored[bucket_start[v] .. bucket_start[v + 1]) */
    PyObject *owner;
} Table;

typedef struct {
    Py_ssize_t index, start;
} Hit;

#define CAPSULE "collector._literals.table"

static void table_release(Table *t) {
    if (!t)
        return;
    PyMem_Free(t->words);
    PyMem_Free(t->lengths);
    PyMem_Free(t->singles);
    PyMem_Free(t->bucket_start);
    PyMem_Free(t->anchored);
    Py_XDECREF(t->owner);
    PyMem_Free(t);
}

static void table_free(PyObject *capsule) {
    table_release(PyCapsule_GetPointer(capsule, CAPSULE));
}

/* table(words, sample) -> capsule: ``words`` a tuple of non-empty bytes, ``sample`` bytes
 * of the text to come (only the anchors' choice depends on it, never the answer). */
static PyObject *table(PyObject *self, PyObject *args) {
    PyObject *words;
    Py_buffer sample;
    if (!PyArg_ParseTuple(args, "O!y*", &PyTuple_Type, &words, &sample))
        return NULL;
    Table *t = PyMem_Calloc(1, sizeof(Table));
    unsigned int *count = PyMem_Calloc(65536, sizeof(unsigned int));
    Py_ssize_t *anchor_of = NULL;
    PyObject *capsule = NULL;
    if (!t || !count) {
        PyErr_NoMemory();
        goto fail;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(words);
    t->nwords = n;
    t->words = PyMem_Calloc((size_t)(n ? n : 1), sizeof(*t->words));
    t->lengths = PyMem_Calloc((size_t)(n ? n : 1), sizeof(*t->lengths));
    t->singles = PyMem_Calloc((size_t)(n ? n : 1), sizeof(*t->singles));
    t->bucket_start = PyMem_Calloc(65537, sizeof(unsigned int));
    anchor_of = PyMem_Calloc((size_t)(n ? n : 1), sizeof(Py_ssize_t));
    if (!t->words || !t->lengths || !t->singles || !t->bucket_start || !anchor_of) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *w = PyTuple_GET_ITEM(words, i);
        if (!PyBytes_CheckExact(w) || PyBytes_GET_SIZE(w) == 0) {
            PyErr_SetString(PyExc_ValueError, "table: the words must be non-empty bytes");
            goto fail;
        }
        t->words[i] = (const unsigned char *)PyBytes_AS_STRING(w);
        t->lengths[i] = PyBytes_GET_SIZE(w);
    }
    Py_INCREF(words);
    t->owner = words;
    /* how often each pair occurs in the sample (ties: the first such pair in the word) */
    const unsigned char *s = sample.buf;
    for (Py_ssize_t i = 0; i + 1 < sample.len; i++)
        count[s[i] | s[i + 1] << 8]++;
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const unsigned char *w = t->words[i];
        Py_ssize_t len = t->lengths[i];
        if (len == 1) {                    /* anchored at every pair it begins */
            t->singles[t->nsingles++] = i;
            anchor_of[i] = 0;
            for (unsigned next = 0; next < 256; next++)
                t->bucket_start[w[0] | next << 8]++;
            total += 256;
            continue;
        }
        Py_ssize_t best = 0;
        for (Py_ssize_t a = 1; a + 1 < len; a++)
            if (count[w[a] | w[a + 1] << 8] < count[w[best] | w[best + 1] << 8])
                best = a;
        anchor_of[i] = best;
        t->bucket_start[w[best] | w[best + 1] << 8]++;
        total++;
    }
    if (total > (Py_ssize_t)(UINT32_MAX / 2)) {   /* bucket offsets are 32-bit */
        PyErr_SetString(PyExc_ValueError, "table: too many words");
        goto fail;
    }
    /* buckets: counts to starts */
    unsigned int run = 0;
    for (int v = 0; v < 65536; v++) {
        unsigned int c = t->bucket_start[v];
        t->bucket_start[v] = run;
        run += c;
        t->anchors[v] = c != 0;
    }
    t->bucket_start[65536] = run;
    t->anchored = PyMem_Calloc((size_t)(total ? total : 1), sizeof(Anchored));
    if (!t->anchored) {
        PyErr_NoMemory();
        goto fail;
    }
    memset(count, 0, 65536 * sizeof(unsigned int));       /* now: filled per bucket */
    for (Py_ssize_t i = 0; i < n; i++) {
        const unsigned char *w = t->words[i];
        for (unsigned next = 0; next < (t->lengths[i] == 1 ? 256u : 1u); next++) {   /* one-byte words: 256 pairs */
            unsigned v = t->lengths[i] == 1 ? (w[0] | next << 8)
                                            : ((unsigned)w[anchor_of[i]] | (unsigned)w[anchor_of[i] + 1] << 8);
            Anchored *slot = &t->anchored[t->bucket_start[v] + count[v]++];
            slot->index = i;
            slot->offset = anchor_of[i];
            unsigned char head[8] = {0}, mask[8] = {0};
            for (Py_ssize_t j = 0; j < 8 && j < t->lengths[i]; j++) {
                head[j] = w[j];
                mask[j] = 0xFF;
            }
            memcpy(&slot->head, head, 8);
            memcpy(&slot->mask, mask, 8);
        }
    }
    capsule = PyCapsule_New(t, CAPSULE, table_free);
    if (!capsule)
        goto fail;
    PyMem_Free(count);
    PyMem_Free(anchor_of);
    PyBuffer_Release(&sample);
    return capsule;
fail:
    PyMem_Free(count);
    PyMem_Free(anchor_of);
    table_release(t);
    PyBuffer_Release(&sample);
    return NULL;
}

typedef struct {
    Hit *hits;
    Py_ssize_t n, cap;
} Hits;

static int add_hit(Hits *h, Py_ssize_t index, Py_ssize_t start) {
    if (h->n == h->cap) {
        Py_ssize_t grown = h->cap ? h->cap * 2 : 1024;
        Hit *more = PyMem_RawRealloc(h->hits, (size_t)grown * sizeof(Hit));
        if (!more)
            return -1;
        h->hits = more;
        h->cap = grown;
    }
    h->hits[h->n].index = index;
    h->hits[h->n].start = start;
    h->n++;
    return 0;
}

static inline int verify(const Table *t, unsigned v, const unsigned char *b, Py_ssize_t i, Py_ssize_t size,
                         Hits *out) {
    for (unsigned k = t->bucket_start[v]; k < t->bucket_start[v + 1]; k++) {
        const Anchored *a = &t->anchored[k];
        Py_ssize_t start = i - a->offset, len = t->lengths[a->index];
        if (start < 0 || len > size - start)
            continue;
        if (size - start >= 8) {           /* the first 8 bytes at once, then the rest */
            uint64_t got;
            memcpy(&got, b + start, 8);
            if ((got & a->mask) != a->head ||
                (len > 8 && memcmp(b + start + 8, t->words[a->index] + 8, (size_t)(len - 8)) != 0))
                continue;
        } else if (memcmp(b + start, t->words[a->index], (size_t)len) != 0) {
            continue;
        }
        if (add_hit(out, a->index, start) < 0)
            return -1;
    }
    return 0;
}

/* The scan itself, without the GIL: 0, or -1 when out of memory.  One-byte words are in
 * the pair table too (anchored at every pair they begin), but for the block's last byte.
 * Eight bytes are loaded at a time and their seven pairs looked up with one branch (on a
 * little-endian machine: pair a, b is then the 16 bits a | b << 8, as the table has it). */
static int find_all(const Table *t, const unsigned char *b, Py_ssize_t size, Hits *out) {
    const unsigned char *anchors = t->anchors;
    Py_ssize_t last = size - 1, i = 0;
#if WORDWISE
    for (; i + 8 <= size; i += 7) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        if (!UNLIKELY(anchors[(uint16_t)w] | anchors[(uint16_t)(w >> 8)] | anchors[(uint16_t)(w >> 16)] |
                      anchors[(uint16_t)(w >> 24)] | anchors[(uint16_t)(w >> 32)] |
                      anchors[(uint16_t)(w >> 40)] | anchors[(uint16_t)(w >> 48)]))
            continue;
        for (int k = 0; k < 7; k++) {
            unsigned v = (uint16_t)(w >> (8 * k));
            if (anchors[v] && verify(t, v, b, i + k, size, out) < 0)
                return -1;
        }
    }
#endif
    for (; i < last; i++) {
        unsigned v = b[i] | (unsigned)b[i + 1] << 8;
        if (anchors[v] && verify(t, v, b, i, size, out) < 0)
            return -1;
    }
    for (Py_ssize_t k = 0; size > 0 && k < t->nsingles; k++)
        if (t->words[t->singles[k]][0] == b[last] && add_hit(out, t->singles[k], last) < 0)
            return -1;
    return 0;
}

/* The answer's list: (index, start, end) of each hit. */
static PyObject *hits_list(const Table *t, const Hits *hits) {
    PyObject *result = PyList_New(hits->n);
    if (!result)
        return NULL;
    for (Py_ssize_t k = 0; k < hits->n; k++) {
        Py_ssize_t index = hits->hits[k].index, start = hits->hits[k].start;
        PyObject *item = Py_BuildValue("(nnn)", index, start, start + t->lengths[index]);
        if (!item) {
            Py_DECREF(result);
            return NULL;
        }
        PyList_SET_ITEM(result, k, item);
    }
    return result;
}

/* ASCII A-Z to a-z, every other byte itself (bytes.lower()), eight bytes at a time: a byte
 * is upper-case when it is ASCII, at least 'A' and not above 'Z', which two additions on its
 * low seven bits tell in its high bit; that bit, shifted to 0x20, lowers it. */
static void lower_into(const unsigned char *in, unsigned char *out, Py_ssize_t n) {
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w, low7;
        memcpy(&w, in + i, 8);
        low7 = w & 0x7F7F7F7F7F7F7F7FULL;
        uint64_t upper = ~w & ((low7 + 0x3F3F3F3F3F3F3F3FULL) ^ (low7 + 0x2525252525252525ULL)) &
                         0x8080808080808080ULL;
        w |= upper >> 2;
        memcpy(out + i, &w, 8);
    }
    for (; i < n; i++)
        out[i] = (in[i] >= 'A' && in[i] <= 'Z') ? (unsigned char)(in[i] | 0x20) : in[i];
}

/* The search behind find and find_lower: the hits of ``table`` in the block, which is
 * first lower-cased into a new bytes object when ``low`` is given (*low: that object). */
static PyObject *search(PyObject *args, PyObject **low) {
    PyObject *capsule;
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "Oy*", &capsule, &view))
        return NULL;
    Table *t = PyCapsule_GetPointer(capsule, CAPSULE);
    if (t && low)
        *low = PyBytes_FromStringAndSize(NULL, view.len);
    if (!t || (low && !*low)) {
        PyBuffer_Release(&view);
        return NULL;
    }
    const unsigned char *text = view.buf;
    Hits hits = {NULL, 0, 0};
    int failed;
    Py_BEGIN_ALLOW_THREADS
    if (low) {
        lower_into(view.buf, (unsigned char *)PyBytes_AS_STRING(*low), view.len);
        text = (const unsigned char *)PyBytes_AS_STRING(*low);
    }
    failed = find_all(t, text, view.len, &hits);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    PyObject *found = failed ? PyErr_NoMemory() : hits_list(t, &hits);
    PyMem_RawFree(hits.hits);
    if (!found && low)
        Py_CLEAR(*low);
    return found;
}

/* find(table, block) -> [(index, start, end), ...]: every occurrence of every word, in
 * order of position (same position: the order of the table's buckets). */
static PyObject *find(PyObject *self, PyObject *args) {
    return search(args, NULL);
}

/* find_lower(table, block) -> (block.lower(), find(table, block.lower())): redaction needs
 * both, and bytes.lower() alone took a third of the search's time. */
static PyObject *find_lower(PyObject *self, PyObject *args) {
    PyObject *low = NULL;
    PyObject *found = search(args, &low);
    return found ? Py_BuildValue("(NN)", low, found) : NULL;
}

static PyMethodDef methods[] = {
    {"table", table, METH_VARARGS,
     "table(words, sample) -> the search table of a tuple of non-empty bytes (``sample``: text like "
     "what will be searched; it only decides which pairs anchor the words)."},
    {"find", find, METH_VARARGS,
     "find(table, block) -> [(index, start, end), ...]: every occurrence of every word in block."},
    {"find_lower", find_lower, METH_VARARGS,
     "find_lower(table, block) -> (block.lower(), find(table, block.lower())), in one call."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_literals",
                                    "Every occurrence of a fixed set of byte strings, in C (see collector.literals).",
                                    -1, methods};

PyMODINIT_FUNC PyInit__literals(void) {
    return PyModule_Create(&module);
}
