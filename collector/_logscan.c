/* collector._logscan: the per-line part of the log statistics (collector/health.py) in C.
 *
 * Why: on a troubled agent's log a third of the lines are errors, and even with every
 * step a C-level pass over Python lists, building the block's error table cost about
 * 4 us per candidate line: 70% of the collecting thread's time, most of the time by
 * which a collect trailed 7-Zip.  This module builds the same table in one pass.
 *
 * What it does is exactly LogStats._python_table (the pure-Python fallback, which gives
 * the same answers and is tested against this): find the lines holding an error word
 * (err, emerg, fatal, crit, panic, alert, severe; ASCII case ignored), cut each to
 * max_line bytes and its trailing CRs, make its hex shape (ASCII 1-9 to 0, then long hex
 * words to 0aaa..., collector.health._hex_shape, on lines of at most hex_limit bytes), look
 * it up in the memo of hex shapes (misses go to ``resolve``, LogStats._hex_misses, in one
 * call), then count the lines stamped in the block's main layout per key and per hour (each
 * key's first and last stamp made a datetime here), and every line of the block
 * (LogStats.lines).  It returns
 * None wherever it cannot promise the Python answer (a stamp out of place, minutes or
 * seconds over 59, a key's first or last stamp no real date, too many distinct hours, a
 * memo entry of another form): the caller
 * then builds the table in Python.  Classification itself (what is an error, the
 * normalized key) stays in Python, reached only through ``resolve``.
 *
 * Input is hostile: every offset is checked against the block, nothing is trusted
 * from the memo but its form, and memory is bounded by the block's line count.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define WORDWISE 0           /* a loaded word's pairs would be the other way round: byte by byte */
#else
#define WORDWISE 1
#endif

#define STAMP 19          /* YYYY-MM-DD HH:MM:SS */
#define HOUR 13           /* YYYY-MM-DD HH */
#define MAX_HOURS 64      /* distinct hours in one block; more: the Python way */

typedef struct {
    Py_ssize_t start, end;     /* the line (after its newline) and the end of its raw bytes */
    unsigned char odd;         /* a [1-9][xX]: the "0" shape would make it a 0x prefix */
} Line;

typedef struct {
    Py_ssize_t count, first_index, first_start, first_end;
    const char *min_stamp, *max_stamp;
    unsigned int *per_hour;    /* MAX_HOURS counts */
} Slot;

static inline unsigned char lower(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

/* The error words, each anchored at one of its byte pairs (a rare one in English text):
 * every occurrence holds its anchor pair at the anchor's offset, so only positions whose
 * pair anchors some word are looked at.  The words are lower-case ASCII letters. */
static const struct {
    const char *word;
    Py_ssize_t len, anchor;
} error_words[] = {
    {"err", 3, 1}, {"emerg", 5, 3}, {"fatal", 5, 0}, {"crit", 4, 0}, {"panic", 5, 0}, {"alert", 5, 3}, {"severe", 6, 1},
};
#define N_ERROR_WORDS (sizeof error_words / sizeof *error_words)

/* [a | b << 8]: the error words anchored at the pair a, b (a bit each), in either case. */
static unsigned char anchored_at[65536];

static void init_anchored_at(void) {
    for (unsigned w = 0; w < N_ERROR_WORDS; w++)
        for (int upper = 0; upper < 4; upper++) {
            unsigned a = (unsigned char)error_words[w].word[error_words[w].anchor];
            unsigned b = (unsigned char)error_words[w].word[error_words[w].anchor + 1];
            if (upper & 1) a &= 0xDF;
            if (upper & 2) b &= 0xDF;
            anchored_at[a | b << 8] |= (unsigned char)(1u << w);
        }
}

/* Whether a word of ``words`` (bits) is at its anchor's place around p[i], inside [p, p + n). */
static int word_around(const unsigned char *p, Py_ssize_t n, Py_ssize_t i, unsigned words) {
    for (unsigned w = 0; words; w++, words >>= 1) {
        if (!(words & 1))
            continue;
        Py_ssize_t start = i - error_words[w].anchor, len = error_words[w].len;
        if (start < 0 || len > n - start)
            continue;
        Py_ssize_t k = 0;
        while (k < len && lower(p[start + k]) == (unsigned char)error_words[w].word[k])
            k++;
        if (k == len)
            return 1;
    }
    return 0;
}

/* Whether [p, end) holds an error word, ASCII case ignored (bytes.lower() then a search).
 * Eight bytes are loaded at a time and their seven pairs looked up with one branch. */
static int has_error_word(const unsigned char *p, const unsigned char *end) {
    Py_ssize_t n = end - p, i = 0;
#if WORDWISE
    for (; i + 8 <= n; i += 7) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (!(anchored_at[(uint16_t)w] | anchored_at[(uint16_t)(w >> 8)] | anchored_at[(uint16_t)(w >> 16)] |
              anchored_at[(uint16_t)(w >> 24)] | anchored_at[(uint16_t)(w >> 32)] |
              anchored_at[(uint16_t)(w >> 40)] | anchored_at[(uint16_t)(w >> 48)]))
            continue;
        for (int k = 0; k < 7; k++) {
            unsigned words = anchored_at[(uint16_t)(w >> (8 * k))];
            if (words && word_around(p, n, i + k, words))
                return 1;
        }
    }
#endif
    for (; i + 1 < n; i++) {
        unsigned words = anchored_at[p[i] | (unsigned)p[i + 1] << 8];
        if (words && word_around(p, n, i, words))
            return 1;
    }
    return 0;
}

static inline int is_hex(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static inline int is_word(unsigned char c) {      /* [0-9A-Za-z_\x80-\xff] */
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* Byte classes for the hex shape: one table look-up per byte. */
enum { C_HEX = 1, C_WORD = 2, C_DIGIT = 4, C_HEX_LETTER = 8 };
static unsigned char byte_class[256];

static void init_byte_class(void) {
    for (int c = 0; c < 256; c++)
        byte_class[c] = (unsigned char)((is_hex((unsigned char)c) ? C_HEX : 0) | (is_word((unsigned char)c) ? C_WORD : 0) |
                                        (is_digit((unsigned char)c) ? C_DIGIT : 0) |
                                        (is_hex((unsigned char)c) && !is_digit((unsigned char)c) ? C_HEX_LETTER : 0));
}

/* collector.health._hex_shape on one line, in place: each long hex word (8 or more hex
 * characters holding a letter and a digit, after a byte that is neither a word byte nor
 * "." or ":", the line's start counting as such, and before no word byte) becomes "0aaa..."
 * of its length, unless a stamp or level rule reads into it: after "," when it starts with
 * a digit, after "+" or "-" when it starts with four digits, after "level=".
 * Such a word is always a whole run of word bytes (hex characters are word bytes, and it
 * has none on either side), so the line is walked run by run, each byte classified once. */
static void hex_shape(unsigned char *b, Py_ssize_t len) {
    Py_ssize_t i = 0;
    while (i < len) {
        if (!(byte_class[b[i]] & C_WORD)) {
            i++;
            continue;
        }
        Py_ssize_t s = i;
        unsigned char all = 0xFF, any = 0;
        while (i < len && (byte_class[b[i]] & C_WORD)) {
            all &= byte_class[b[i]];
            any |= byte_class[b[i]];
            i++;
        }
        if (i - s < 8 || !(all & C_HEX) || !(any & C_DIGIT) || !(any & C_HEX_LETTER))
            continue;
        unsigned char before = s ? b[s - 1] : '\n';
        if (before == '.' || before == ':')
            continue;
        int keep = (before == ',' && is_digit(b[s])) ||
                   (before == '=' && s >= 6 && memcmp(b + s - 6, "level", 5) == 0) ||
                   ((before == '+' || before == '-') && is_digit(b[s]) && is_digit(b[s + 1]) &&
                    is_digit(b[s + 2]) && is_digit(b[s + 3]));
        if (!keep) {
            b[s] = '0';
            memset(b + s + 1, 'a', (size_t)(i - s - 1));
        }
    }
}

/* The datetime of a YYYY?MM?DD?HH?MM?SS stamp (LogStats._stamp_time); NULL with
 * ValueError set when a digit is not one or the date does not exist. */
static PyObject *stamp_time(const char *t) {
    static const int digit_at[14] = {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18};
    for (int i = 0; i < 14; i++)
        if (!is_digit((unsigned char)t[digit_at[i]])) {
            PyErr_SetString(PyExc_ValueError, "not a stamp");
            return NULL;
        }
#define D(i) (t[i] - '0')
    return PyDateTime_FromDateAndTime(D(0) * 1000 + D(1) * 100 + D(2) * 10 + D(3), D(5) * 10 + D(6),
                                      D(8) * 10 + D(9), D(11) * 10 + D(12), D(14) * 10 + D(15),
                                      D(17) * 10 + D(18), 0);
#undef D
}

static PyObject *fail_none(void) {
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

/* scan(block, memo, resolve, max_line, hex_limit) -> None | (n, hours, groups, pairs, slow, lines); see the
 * module comment and LogStats._python_table for the meaning of each part. */
static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer view;
    PyObject *memo, *resolve;
    Py_ssize_t max_line, hex_limit;
    if (!PyArg_ParseTuple(args, "y*O!Onn", &view, &PyDict_Type, &memo, &resolve, &max_line, &hex_limit))
        return NULL;
    const unsigned char *block = (const unsigned char *)view.buf;
    const Py_ssize_t size = view.len;
    PyObject *result = NULL, *shapes = NULL, *codes = NULL, *slots = NULL, *hours_list = NULL;
    PyObject *groups = NULL, *pairs = NULL, *slow = NULL;
    Line *lines = NULL;
    Slot *slot = NULL;
    Py_ssize_t n = 0, cap = 0, nslots = 0, slot_cap = 0, nhours = 0, npairs = 0, pair_cap = 0, nlines = 0;
    Py_ssize_t *pair_order = NULL;           /* slot * MAX_HOURS + hour, in first-occurrence order */
    char hour_text[MAX_HOURS][HOUR];
    int misses = 0;

    if (max_line < 1 || size == 0 || block[size - 1] != '\n') {
        PyErr_SetString(PyExc_ValueError, "scan: a block of whole lines and a positive max_line");
        goto done;
    }
    /* 1. candidate lines (and every line counted) */
    for (Py_ssize_t s = 0; s < size; nlines++) {
        const unsigned char *nl = memchr(block + s, '\n', (size_t)(size - s));
        Py_ssize_t e = nl - block;
        if (has_error_word(block + s, block + e)) {
            if (n == cap) {
                Py_ssize_t grown = cap ? cap * 2 : 256;
                Line *more = PyMem_Realloc(lines, (size_t)grown * sizeof(Line));
                if (!more) { PyErr_NoMemory(); goto done; }
                lines = more;
                cap = grown;
            }
            Py_ssize_t end = e - s > max_line ? s + max_line : e;
            while (end > s && block[end - 1] == '\r')
                end--;
            lines[n].start = s;
            lines[n].end = end;
            lines[n].odd = 0;
            n++;
        }
        s = e + 1;
    }
    /* 2. digit shapes and their memo entries */
    shapes = PyList_New(n);
    codes = PyList_New(n);
    if (!shapes || !codes)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t len = lines[i].end - lines[i].start;
        PyObject *shape = PyBytes_FromStringAndSize(NULL, len);
        if (!shape)
            goto done;
        unsigned char *out = (unsigned char *)PyBytes_AS_STRING(shape);
        const unsigned char *in = block + lines[i].start;
        /* the digit shape: ASCII 1-9 to 0, every other byte itself (branch-free, so the
         * compiler makes it vector code); "odd": a [1-9] before x or X, where the shape has
         * "0x" and the line has none */
        unsigned char odd = 0;
        if (len)
            out[0] = (unsigned char)(in[0] - '1') < 9 ? '0' : in[0];
        for (Py_ssize_t j = 1; j < len; j++) {
            unsigned char c = in[j];
            out[j] = (unsigned char)(c - '1') < 9 ? '0' : c;
            odd |= (unsigned char)(((c | 0x20) == 'x') & ((unsigned char)(in[j - 1] - '1') < 9));
        }
        lines[i].odd = odd;
        if (len <= hex_limit)
            hex_shape(out, len);
        PyList_SET_ITEM(shapes, i, shape);
        PyObject *code = PyDict_GetItemWithError(memo, shape);
        if (!code) {
            if (PyErr_Occurred())
                goto done;
            code = Py_None;
            misses = 1;
        }
        Py_INCREF(code);
        PyList_SET_ITEM(codes, i, code);
    }
    if (misses) {
        PyObject *r = PyObject_CallFunctionObjArgs(resolve, codes, shapes, NULL);
        if (!r)
            goto done;
        Py_DECREF(r);
        if (!PyList_CheckExact(codes) || PyList_GET_SIZE(codes) != n) {
            result = fail_none();
            goto done;
        }
    }
    /* from here on, Python code (a key's __hash__ or __eq__, a layout's __eq__) may run while
     * keys and layouts are read in place: read them from a tuple no one else can change */
    PyObject *frozen = PyList_AsTuple(codes);
    Py_SETREF(codes, frozen);
    if (!codes)
        goto done;
    /* 3. the main layout: that of the first line stamped YYYY-MM-DD HH:MM:SS */
    PyObject *main_layout = NULL;
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *code = PyTuple_GET_ITEM(codes, i);
        if (!PyTuple_CheckExact(code) || PyTuple_GET_SIZE(code) != 2) {
            result = fail_none();
            goto done;
        }
        PyObject *layout = PyTuple_GET_ITEM(code, 1);
        if (!main_layout && PyTuple_CheckExact(layout)) {
            if (PyTuple_GET_SIZE(layout) < 1 || !PyLong_CheckExact(PyTuple_GET_ITEM(layout, 0))) {
                result = fail_none();
                goto done;
            }
            at = PyLong_AsSsize_t(PyTuple_GET_ITEM(layout, 0));
            if (at < 0 || at > size) {
                PyErr_Clear();
                result = fail_none();
                goto done;
            }
            main_layout = layout;
        }
    }
    /* 4. the table */
    slots = PyDict_New();
    slow = PyList_New(0);
    if (!slots || !slow)
        goto done;
    Py_ssize_t prev_hour = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *code = PyTuple_GET_ITEM(codes, i);
        PyObject *key = PyTuple_GET_ITEM(code, 0), *layout = PyTuple_GET_ITEM(code, 1);
        int on_main = 0;
        if (!lines[i].odd && main_layout) {
            on_main = PyObject_RichCompareBool(layout, main_layout, Py_EQ);
            if (on_main < 0)
                goto done;
        }
        if (!on_main) {
            if (lines[i].odd || key != Py_None || layout != Py_None) {
                PyObject *item = Py_BuildValue("(nnn)", i, lines[i].start, lines[i].end);
                if (!item || PyList_Append(slow, item) < 0) {
                    Py_XDECREF(item);
                    goto done;
                }
                Py_DECREF(item);
            }
            continue;
        }
        if (lines[i].start + at + STAMP > lines[i].end) {     /* the layout promised a stamp here */
            result = fail_none();
            goto done;
        }
        const char *stamp = (const char *)block + lines[i].start + at;
        if ((unsigned char)stamp[14] > '5' || (unsigned char)stamp[17] > '5') {   /* minutes, seconds > 59 */
            result = fail_none();
            goto done;
        }
        Py_ssize_t h = -1;
        if (prev_hour >= 0 && memcmp(hour_text[prev_hour], stamp, HOUR) == 0)
            h = prev_hour;
        for (Py_ssize_t k = 0; h < 0 && k < nhours; k++)
            if (memcmp(hour_text[k], stamp, HOUR) == 0)
                h = k;
        if (h < 0) {
            if (nhours == MAX_HOURS) {
                result = fail_none();
                goto done;
            }
            memcpy(hour_text[nhours], stamp, HOUR);
            h = nhours++;
        }
        prev_hour = h;
        if (key == Py_None)
            continue;
        PyObject *found = PyDict_GetItemWithError(slots, key);
        Py_ssize_t k;
        if (found) {
            k = PyLong_AsSsize_t(found);
            if (k < 0 || k >= nslots) {      /* only our own numbers belong here */
                PyErr_Clear();
                result = fail_none();
                goto done;
            }
        } else {
            if (PyErr_Occurred())
                goto done;
            if (nslots == slot_cap) {
                Py_ssize_t grown = slot_cap ? slot_cap * 2 : 64;
                Slot *more = PyMem_Realloc(slot, (size_t)grown * sizeof(Slot));
                if (!more) { PyErr_NoMemory(); goto done; }
                slot = more;
                slot_cap = grown;
            }
            k = nslots;
            slot[k].per_hour = PyMem_Calloc(MAX_HOURS, sizeof(unsigned int));
            if (!slot[k].per_hour) { PyErr_NoMemory(); goto done; }
            nslots++;
            slot[k].count = 0;
            slot[k].first_index = i;
            slot[k].first_start = lines[i].start;
            slot[k].first_end = lines[i].end;
            slot[k].min_stamp = slot[k].max_stamp = stamp;
            PyObject *number = PyLong_FromSsize_t(k);
            if (!number || PyDict_SetItem(slots, key, number) < 0) {
                Py_XDECREF(number);
                goto done;
            }
            Py_DECREF(number);
        }
        Slot *sl = &slot[k];
        sl->count++;
        if (memcmp(stamp, sl->min_stamp, STAMP) < 0)
            sl->min_stamp = stamp;
        if (memcmp(stamp, sl->max_stamp, STAMP) > 0)
            sl->max_stamp = stamp;
        if (sl->per_hour[h]++ == 0) {
            if (npairs == pair_cap) {
                Py_ssize_t grown = pair_cap ? pair_cap * 2 : 64;
                Py_ssize_t *more = PyMem_Realloc(pair_order, (size_t)grown * sizeof(Py_ssize_t));
                if (!more) { PyErr_NoMemory(); goto done; }
                pair_order = more;
                pair_cap = grown;
            }
            pair_order[npairs++] = k * MAX_HOURS + h;
        }
    }
    if (PyDict_GET_SIZE(slots) != nslots) {    /* a key equal to another only when stored: a slot lost */
        result = fail_none();
        goto done;
    }
    /* 5. the answer */
    hours_list = PyList_New(nhours);
    groups = PyList_New(nslots);
    pairs = PyList_New(npairs);
    if (!hours_list || !groups || !pairs)
        goto done;
    for (Py_ssize_t h = 0; h < nhours; h++) {
        PyObject *text = PyBytes_FromStringAndSize(hour_text[h], HOUR);
        if (!text)
            goto done;
        PyList_SET_ITEM(hours_list, h, text);
    }
    {
        PyObject *key, *number;
        Py_ssize_t pos = 0;
        while (PyDict_Next(slots, &pos, &key, &number)) {
            Py_ssize_t k = PyLong_AsSsize_t(number);
            if (k < 0 || k >= nslots || PyList_GET_ITEM(groups, k) != NULL) {
                PyErr_Clear();
                result = fail_none();
                goto done;
            }
            Slot *sl = &slot[k];
            PyObject *earliest = stamp_time(sl->min_stamp);
            PyObject *latest = earliest ? stamp_time(sl->max_stamp) : NULL;
            if (!latest) {
                Py_XDECREF(earliest);
                if (PyErr_ExceptionMatches(PyExc_ValueError)) {     /* no real date: the Python way */
                    PyErr_Clear();
                    result = fail_none();
                }
                goto done;
            }
            PyObject *item = Py_BuildValue("(OnNNnnn)", key, sl->count, earliest, latest, sl->first_index,
                                           sl->first_start, sl->first_end);
            if (!item)
                goto done;
            PyList_SET_ITEM(groups, k, item);
        }
    }
    for (Py_ssize_t p = 0; p < npairs; p++) {
        Py_ssize_t k = pair_order[p] / MAX_HOURS, h = pair_order[p] % MAX_HOURS;
        PyObject *item = Py_BuildValue("(nnI)", k, h, slot[k].per_hour[h]);
        if (!item)
            goto done;
        PyList_SET_ITEM(pairs, p, item);
    }
    result = Py_BuildValue("(nOOOOn)", n, hours_list, groups, pairs, slow, nlines);
done:
    for (Py_ssize_t k = 0; k < nslots; k++)
        PyMem_Free(slot[k].per_hour);
    PyMem_Free(slot);
    PyMem_Free(lines);
    PyMem_Free(pair_order);
    Py_XDECREF(shapes);
    Py_XDECREF(codes);
    Py_XDECREF(slots);
    Py_XDECREF(hours_list);
    Py_XDECREF(groups);
    Py_XDECREF(pairs);
    Py_XDECREF(slow);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(block, memo, resolve, max_line, hex_limit) -> None or (n, hours, groups, pairs, slow, lines): the error "
     "table of a block of whole lines (see collector.health.LogStats._python_table)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_logscan",
                                    "The per-line part of the log statistics, in C (see collector.health).",
                                    -1, methods};

PyMODINIT_FUNC PyInit__logscan(void) {
    PyDateTime_IMPORT;
    if (!PyDateTimeAPI)
        return NULL;
    init_anchored_at();
    init_byte_class();
    return PyModule_Create(&module);
}
