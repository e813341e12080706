/* recorder.format._rows: a loop's message rows for the chunk writer, in C.

   rows(messages, index) is, value for value and in the same order of evaluation, the comprehension the
   writer runs in pure Python (recorder.format._schema._message_rows):

       [(index[m.sender], m.op_code, m.data, m.reliable, m.receive_time_ms) for m in messages]

   It raises what that raises: KeyError for a sender the chunk's presence table does not hold yet (the writer
   then makes the loop's rows again through its table's ref, which adds the sender), TypeError for an
   unhashable sender, AttributeError for an item without those attributes. An item whose type is the class given
   to setup() (MatchMessage, a msgspec Struct) has its fields read from their slots; any other item through
   ordinary attribute access. The items, their fields and the index are only read. Optional: the package works
   without it (setup.py builds it when a C compiler is there), and writes the same bytes. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#define NFIELDS 5

static PyTypeObject *message_type = NULL;       /* the class whose slots are read directly */
static Py_ssize_t offsets[NFIELDS];             /* of its five fields, in row order */
static PyObject *names[NFIELDS];                /* the fields' names, for any other item */
static const char *const field_names[NFIELDS] = {"sender", "op_code", "data", "reliable", "receive_time_ms"};

static PyObject *
setup(PyObject *module, PyObject *cls)
{
    Py_ssize_t found[NFIELDS];
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "setup() takes the message class");
        return NULL;
    }
    for (int i = 0; i < NFIELDS; i++) {
        PyObject *descr = PyObject_GetAttrString(cls, field_names[i]);
        if (descr == NULL) return NULL;
        if (!Py_IS_TYPE(descr, &PyMemberDescr_Type) ||
            ((PyMemberDescrObject *)descr)->d_member->type != T_OBJECT_EX) {
            Py_DECREF(descr);
            PyErr_Format(PyExc_TypeError, "%s is not an object slot of the message class", field_names[i]);
            return NULL;
        }
        found[i] = ((PyMemberDescrObject *)descr)->d_member->offset;
        Py_DECREF(descr);
    }
    for (int i = 0; i < NFIELDS; i++) offsets[i] = found[i];
    Py_INCREF(cls);
    Py_XSETREF(message_type, (PyTypeObject *)cls);
    Py_RETURN_NONE;
}

/* field i of item m, a new reference (NULL with an exception set) */
static inline PyObject *
field(PyObject *m, int i)
{
    if (Py_TYPE(m) == message_type) {
        PyObject *v = *(PyObject **)((char *)m + offsets[i]);
        if (v != NULL) {
            Py_INCREF(v);
            return v;
        }
    }
    return PyObject_GetAttr(m, names[i]);  /* also raises AttributeError for an unset slot */
}

static PyObject *
rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyDict_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "rows(messages, index) takes a sequence and a dict");
        return NULL;
    }
    PyObject *index = args[1];
    PyObject *seq = PySequence_Fast(args[0], "messages must be iterable");
    if (seq == NULL) return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL) goto error;
    for (Py_ssize_t j = 0; j < PySequence_Fast_GET_SIZE(seq); j++) {  /* the size read again, as a list's iterator does */
        PyObject *m = PySequence_Fast_GET_ITEM(seq, j);
        Py_INCREF(m);
        PyObject *row = PyTuple_New(NFIELDS);
        if (row == NULL) {
            Py_DECREF(m);
            goto error;
        }
        PyObject *sender = field(m, 0);
        if (sender == NULL) goto bad_row;
        PyObject *at = PyDict_GetItemWithError(index, sender);  /* borrowed */
        if (at == NULL) {
            if (!PyErr_Occurred()) {  /* KeyError(sender), as a dict's [] raises it */
                PyObject *key = PyTuple_Pack(1, sender);
                if (key != NULL) {
                    PyErr_SetObject(PyExc_KeyError, key);
                    Py_DECREF(key);
                }
            }
            Py_DECREF(sender);
            goto bad_row;
        }
        Py_INCREF(at);
        Py_DECREF(sender);
        PyTuple_SET_ITEM(row, 0, at);
        for (int i = 1; i < NFIELDS; i++) {
            PyObject *v = field(m, i);
            if (v == NULL) goto bad_row;
            PyTuple_SET_ITEM(row, i, v);
        }
        Py_DECREF(m);
        int failed = PyList_Append(out, row);
        Py_DECREF(row);
        if (failed) goto error;
        continue;
    bad_row:
        Py_DECREF(m);
        Py_DECREF(row);  /* a tuple with empty slots is freed as usual */
        goto error;
    }
    Py_DECREF(seq);
    return out;
error:
    Py_XDECREF(out);
    Py_DECREF(seq);
    return NULL;
}

static PyMethodDef methods[] = {
    {"setup", (PyCFunction)setup, METH_O, "setup(cls): read the five message fields of instances of cls from their slots"},
    {"rows", (PyCFunction)(void (*)(void))rows, METH_FASTCALL,
     "rows(messages, index): [(index[m.sender], m.op_code, m.data, m.reliable, m.receive_time_ms) for m in messages]"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "recorder.format._rows", "A loop's message rows for the chunk writer, in C.", -1, methods,
};

PyMODINIT_FUNC
PyInit__rows(void)
{
    for (int i = 0; i < NFIELDS; i++) {
        names[i] = PyUnicode_InternFromString(field_names[i]);
        if (names[i] == NULL) return NULL;
    }
    return PyModule_Create(&module_def);
}
