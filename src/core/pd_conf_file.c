/* pd_conf_file.c: the YAML configuration: loader, dispatcher, setters. */

#include "pd_core.h"

#define PD_CONF_KB   ((int64_t) 1024)
#define PD_CONF_MB   (PD_CONF_KB * 1024)
#define PD_CONF_GB   (PD_CONF_MB * 1024)

#define PD_CONF_SEC  ((int64_t) 1000)
#define PD_CONF_MIN  (PD_CONF_SEC * 60)
#define PD_CONF_HOUR (PD_CONF_MIN * 60)
#define PD_CONF_DAY  (PD_CONF_HOUR * 24)

/* room for "[ipv6]:port" */
#define PD_CONF_ADDR_TEXT_LEN  (INET6_ADDRSTRLEN + sizeof("[]:65535"))

/* how pd_conf_parse_addr() may read its input */
#define PD_CONF_ADDR_PORT_ONLY  0x01   /* "80" alone: any address */
#define PD_CONF_ADDR_WILDCARD   0x02   /* "*:80" */

/* where a directive set in the file is, for init_conf's phrases */
typedef struct {
    pd_uint_t       module;
    const char     *name;
    yaml_mark_t     mark;        /* its value, or its key when empty */
} pd_conf_placed_t;

/* what one pd_conf_parse() run carries besides the public pd_conf_t */
typedef struct {
    pd_conf_t       cf;
    u_char         *err;         /* the caller's message buffer */
    size_t          errlen;
    pd_uint_t       nmodules;
    yaml_mark_t     root_mark;   /* where module-wide errors point */
    yaml_mark_t    *marks;       /* each section's key, by module index */
    pd_array_t     *placed;      /* pd_conf_placed_t: directives set */
    u_char          phrase[PD_CONF_ERRSTR_SIZE];
} pd_conf_walk_t;

typedef struct {
    int64_t         unit;
    const char     *suffix;
} pd_conf_unit_t;

static pd_int_t pd_conf_prepare(pd_conf_walk_t *w);
static pd_int_t pd_conf_load(pd_conf_walk_t *w, yaml_document_t *doc);
static void pd_conf_syntax_error(pd_conf_walk_t *w, yaml_parser_t *parser,
    FILE *fp);
static void pd_conf_offset_mark(FILE *fp, size_t offset, yaml_mark_t *mark);
static pd_int_t pd_conf_walk_root(pd_conf_walk_t *w, yaml_node_t *root);
static pd_int_t pd_conf_walk_section(pd_conf_walk_t *w, pd_module_t *m,
    yaml_node_t *key, yaml_node_t *value);
static pd_int_t pd_conf_handle(pd_conf_walk_t *w, pd_module_t *m,
    pd_command_t *cmd, yaml_node_t *key, yaml_node_t *value);
static pd_int_t pd_conf_init_modules(pd_conf_walk_t *w);
static yaml_mark_t *pd_conf_phrase_mark(pd_conf_walk_t *w, pd_uint_t module,
    const char *phrase);
static void pd_conf_error(pd_conf_walk_t *w, yaml_mark_t *mark,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static pd_int_t pd_conf_check_key(pd_conf_walk_t *w, yaml_node_t *key);
static pd_uint_t pd_conf_seen_before(yaml_document_t *doc,
    yaml_node_t *mapping, yaml_node_pair_t *pair);
static pd_command_t *pd_conf_find_command(pd_command_t *cmd,
    yaml_node_t *key);
static pd_uint_t pd_conf_key_is(yaml_node_t *key, const char *name);
static pd_uint_t pd_conf_is_null(yaml_node_t *node);
static pd_uint_t pd_conf_is_empty(yaml_node_t *node);
static void pd_conf_node_str(yaml_node_t *node, pd_str_t *s);
static pd_uint_t pd_conf_eq_ci(pd_str_t *s, const char *lit);
static pd_int_t pd_conf_atoi64(pd_str_t *s, int64_t *value);
static int64_t pd_conf_scale(pd_str_t *s, const pd_conf_unit_t *units,
    int64_t bare);
static const char *pd_conf_phrase(pd_conf_t *cf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const char *pd_conf_bounds_error(pd_conf_t *cf, int64_t min,
    int64_t max, const pd_conf_unit_t *units);
static u_char *pd_conf_unit_text(u_char *p, u_char *last, int64_t v,
    const pd_conf_unit_t *units);
static const char *pd_conf_set_scalars(pd_conf_t *cf, pd_array_t **ap,
    size_t size, pd_uint_t listen);
static const char *pd_conf_parse_addr(pd_str_t *s, pd_listen_conf_t *lc,
    pd_uint_t flags);
static pd_int_t pd_conf_parse_port(u_char *p, u_char *last);
static pd_int_t pd_conf_addr_text(pd_listen_conf_t *lc, pd_pool_t *pool);


/* largest unit first: bounds are printed in the largest exact one */
static const pd_conf_unit_t  pd_conf_size_units[] = {
    { PD_CONF_GB, "g" }, { PD_CONF_GB, "G" },
    { PD_CONF_MB, "m" }, { PD_CONF_MB, "M" },
    { PD_CONF_KB, "k" }, { PD_CONF_KB, "K" },
    { 0, NULL }
};

static const pd_conf_unit_t  pd_conf_duration_units[] = {
    { PD_CONF_DAY, "d" },
    { PD_CONF_HOUR, "h" },
    { PD_CONF_MIN, "m" },
    { PD_CONF_SEC, "s" },
    { 1, "ms" },
    { 0, NULL }
};

static const char  pd_conf_duplicate[] = "is duplicate";


/*
 * Phases: prepare the module confs, load the document, walk it, run
 * every init_conf.  The libyaml parser, document and FILE are released
 * here on every path; what the setters kept lives in the cycle pool.
 */
pd_int_t
pd_conf_parse(pd_cycle_t *cycle, pd_str_t *file, u_char *err, size_t errlen)
{
    pd_int_t          rc;
    pd_conf_walk_t    w;
    yaml_document_t   doc;
    yaml_node_t      *root;

    pd_memzero(&w, sizeof(pd_conf_walk_t));
    w.cf.file = *file;
    w.cf.cycle = cycle;
    w.cf.pool = cycle->pool;
    w.cf.log = cycle->log;
    w.cf.errbuf = w.phrase;
    w.cf.errlen = sizeof(w.phrase);
    w.err = err;
    w.errlen = errlen;

    if (errlen > 0) {
        err[0] = '\0';
    }

    if (pd_conf_prepare(&w) != PD_OK) {
        return PD_ERROR;
    }

    if (pd_conf_load(&w, &doc) != PD_OK) {
        return PD_ERROR;
    }

    w.cf.doc = &doc;
    root = yaml_document_get_root_node(&doc);

    rc = pd_conf_walk_root(&w, root);

    yaml_document_delete(&doc);
    w.cf.doc = NULL;
    w.cf.key = NULL;
    w.cf.node = NULL;
    pd_str_null(&w.cf.value);

    if (rc != PD_OK) {
        return PD_ERROR;
    }

    return pd_conf_init_modules(&w);
}


pd_int_t
pd_conf_peek_path(pd_cycle_t *cycle, pd_str_t *file, const char *key,
    pd_str_t *value)
{
    pd_int_t           rc;
    pd_conf_walk_t     w;
    yaml_node_t       *root, *k, *v;
    yaml_document_t    doc;
    yaml_node_pair_t  *pair;

    /* no message buffer: the caller has reported the errors already */
    pd_memzero(&w, sizeof(pd_conf_walk_t));
    w.cf.file = *file;
    w.cf.cycle = cycle;
    w.cf.pool = cycle->pool;
    w.cf.log = cycle->log;

    if (pd_conf_load(&w, &doc) != PD_OK) {
        return PD_ERROR;
    }

    rc = PD_DECLINED;
    root = yaml_document_get_root_node(&doc);

    for (pair = root->type == YAML_MAPPING_NODE
                ? root->data.mapping.pairs.start : NULL;
         pair != NULL && pair < root->data.mapping.pairs.top;
         pair++)
    {
        k = yaml_document_get_node(&doc, pair->key);
        v = yaml_document_get_node(&doc, pair->value);

        if (k->type != YAML_SCALAR_NODE || !pd_conf_key_is(k, key)
            || v->type != YAML_SCALAR_NODE || v->data.scalar.length == 0)
        {
            continue;
        }

        value->data = v->data.scalar.value;
        value->len = v->data.scalar.length;
        rc = pd_conf_full_name(cycle, value);
        break;
    }

    yaml_document_delete(&doc);

    return rc;
}


/* conf_ctx and enabled (when the caller did not), then create_conf */
static pd_int_t
pd_conf_prepare(pd_conf_walk_t *w)
{
    pd_uint_t     i, n;
    pd_cycle_t   *cycle;
    pd_module_t  *m;

    cycle = w->cf.cycle;

    for (n = 0; pd_modules[n] != NULL; n++) {
        pd_modules[n]->index = n;
    }

    w->nmodules = n;

    if (cycle->conf_ctx == NULL) {
        cycle->conf_ctx = pd_pcalloc(cycle->pool, (n + 1) * sizeof(void *));
        if (cycle->conf_ctx == NULL) {
            pd_conf_error(w, NULL, "out of memory");
            return PD_ERROR;
        }
    }

    if (cycle->enabled == NULL) {
        cycle->enabled = pd_pcalloc(cycle->pool, n + 1);
        if (cycle->enabled == NULL) {
            pd_conf_error(w, NULL, "out of memory");
            return PD_ERROR;
        }
    }

    w->marks = pd_pcalloc(cycle->pool, (n + 1) * sizeof(yaml_mark_t));
    w->placed = pd_array_create(cycle->pool, 32, sizeof(pd_conf_placed_t));
    if (w->marks == NULL || w->placed == NULL) {
        pd_conf_error(w, NULL, "out of memory");
        return PD_ERROR;
    }

    for (i = 0; i < n; i++) {
        m = pd_modules[i];

        /* a toplevel module has no section: it is always present */
        cycle->enabled[i] = m->toplevel ? 1 : 0;

        if (m->create_conf == NULL) {
            continue;
        }

        cycle->conf_ctx[i] = m->create_conf(cycle);
        if (cycle->conf_ctx[i] == NULL) {
            pd_conf_error(w, NULL, "could not create the configuration of "
                          "\"%s\"", m->name);
            return PD_ERROR;
        }
    }

    return PD_OK;
}


/*
 * Loads the first document; a second one is refused rather than
 * silently ignored.  On PD_OK the caller owns doc (yaml_document_delete);
 * the parser and the file are released here on every path.
 */
static pd_int_t
pd_conf_load(pd_conf_walk_t *w, yaml_document_t *doc)
{
    FILE              *fp;
    u_char            *name;
    pd_int_t           rc;
    pd_err_t           err;
    yaml_mark_t        start;
    yaml_node_t       *root, *extra;
    yaml_parser_t      parser;
    yaml_document_t    next;

    name = pd_pnalloc(w->cf.pool, w->cf.file.len + 1);
    if (name == NULL) {
        pd_conf_error(w, NULL, "out of memory");
        return PD_ERROR;
    }

    pd_memcpy(name, w->cf.file.data, w->cf.file.len);
    name[w->cf.file.len] = '\0';

    fp = fopen((char *) name, "rb");
    if (fp == NULL) {
        err = errno;
        pd_conf_error(w, NULL, "open() \"%s\" failed (%d: %s)",
                      name, err, strerror(err));
        return PD_ERROR;
    }

    if (!yaml_parser_initialize(&parser)) {
        (void) fclose(fp);
        pd_conf_error(w, NULL, "out of memory");
        return PD_ERROR;
    }

    yaml_parser_set_input_file(&parser, fp);

    rc = PD_ERROR;

    if (!yaml_parser_load(&parser, doc)) {
        pd_conf_syntax_error(w, &parser, fp);
        goto done;
    }

    root = yaml_document_get_root_node(doc);

    if (root == NULL || pd_conf_is_null(root)) {
        /* refused: an empty file is more likely a mistake than a wish
         * for every default, which would run a daemon serving nothing */
        yaml_document_delete(doc);
        pd_memzero(&start, sizeof(yaml_mark_t));
        pd_conf_error(w, &start, "empty configuration file");
        goto done;
    }

    if (!yaml_parser_load(&parser, &next)) {
        yaml_document_delete(doc);
        pd_conf_syntax_error(w, &parser, fp);
        goto done;
    }

    extra = yaml_document_get_root_node(&next);
    if (extra != NULL) {
        pd_conf_error(w, &extra->start_mark,
                      "only one YAML document is allowed");
        yaml_document_delete(&next);
        yaml_document_delete(doc);
        goto done;
    }

    yaml_document_delete(&next);
    rc = PD_OK;

done:

    yaml_parser_delete(&parser);
    (void) fclose(fp);

    return rc;
}


static void
pd_conf_syntax_error(pd_conf_walk_t *w, yaml_parser_t *parser, FILE *fp)
{
    yaml_mark_t   *mark, at;

    switch (parser->error) {

    case YAML_MEMORY_ERROR:
        pd_conf_error(w, NULL, "out of memory");
        return;

    case YAML_READER_ERROR:
        /* the reader decodes ahead of the scanner and gives only a byte
         * offset; the line and column are counted from the file */
        pd_conf_offset_mark(fp, parser->problem_offset, &at);
        mark = &at;
        break;

    default:
        mark = &parser->problem_mark;
        break;
    }

    if (parser->context != NULL) {
        pd_conf_error(w, mark, "%s (%s)",
                      parser->problem ? parser->problem : "syntax error",
                      parser->context);
        return;
    }

    pd_conf_error(w, mark, "%s",
                  parser->problem ? parser->problem : "syntax error");
}


/* 0-based line and column (in characters, as libyaml counts) of offset */
static void
pd_conf_offset_mark(FILE *fp, size_t offset, yaml_mark_t *mark)
{
    int     ch;
    size_t  i;

    pd_memzero(mark, sizeof(yaml_mark_t));

    if (fseek(fp, 0, SEEK_SET) != 0) {
        return;
    }

    for (i = 0; i < offset; i++) {
        ch = getc(fp);

        if (ch == EOF) {
            break;
        }

        if (ch == '\n') {
            mark->line++;
            mark->column = 0;

        } else if ((ch & 0xc0) != 0x80) {
            /* a UTF-8 continuation byte is part of the previous column */
            mark->column++;
        }
    }
}


/* top level: toplevel modules' directives and the modules' sections */
static pd_int_t
pd_conf_walk_root(pd_conf_walk_t *w, yaml_node_t *root)
{
    pd_uint_t          i;
    pd_module_t       *m;
    yaml_node_t       *key, *value;
    pd_command_t      *cmd;
    yaml_document_t   *doc;
    yaml_node_pair_t  *pair;

    doc = w->cf.doc;
    w->root_mark = root->start_mark;

    if (root->type != YAML_MAPPING_NODE) {
        pd_conf_error(w, &root->start_mark,
                      "the top level must be a mapping of directives and "
                      "sections");
        return PD_ERROR;
    }

    for (pair = root->data.mapping.pairs.start;
         pair < root->data.mapping.pairs.top;
         pair++)
    {
        key = yaml_document_get_node(doc, pair->key);
        value = yaml_document_get_node(doc, pair->value);

        if (pd_conf_check_key(w, key) != PD_OK) {
            return PD_ERROR;
        }

        cmd = NULL;
        m = NULL;

        for (i = 0; m == NULL && i < w->nmodules; i++) {
            if (pd_modules[i]->toplevel) {
                cmd = pd_conf_find_command(pd_modules[i]->commands, key);
                if (cmd != NULL) {
                    m = pd_modules[i];
                }

            } else if (pd_conf_key_is(key, pd_modules[i]->name)) {
                m = pd_modules[i];
            }
        }

        if (m == NULL) {
            pd_conf_error(w, &key->start_mark, "unknown directive \"%.*s\"",
                          (int) key->data.scalar.length,
                          key->data.scalar.value);
            return PD_ERROR;
        }

        if (cmd == NULL) {
            if (pd_conf_seen_before(doc, root, pair)) {
                pd_conf_error(w, &key->start_mark,
                              "\"%s\" section is duplicate", m->name);
                return PD_ERROR;
            }

            if (pd_conf_walk_section(w, m, key, value) != PD_OK) {
                return PD_ERROR;
            }

            continue;
        }

        if (pd_conf_seen_before(doc, root, pair)) {
            pd_conf_error(w, &key->start_mark,
                          "\"%s\" directive is duplicate", cmd->name);
            return PD_ERROR;
        }

        if (pd_conf_handle(w, m, cmd, key, value) != PD_OK) {
            return PD_ERROR;
        }
    }

    return PD_OK;
}


/* a module's section: a mapping of its directives, or null for defaults */
static pd_int_t
pd_conf_walk_section(pd_conf_walk_t *w, pd_module_t *m, yaml_node_t *key,
    yaml_node_t *value)
{
    pd_command_t      *cmd;
    yaml_node_t       *k, *v;
    yaml_document_t   *doc;
    yaml_node_pair_t  *pair;

    doc = w->cf.doc;

    if (value->type == YAML_SCALAR_NODE && pd_conf_is_null(value)) {
        w->cf.cycle->enabled[m->index] = 1;
        w->marks[m->index] = key->start_mark;
        return PD_OK;
    }

    if (value->type != YAML_MAPPING_NODE) {
        pd_conf_error(w, &value->start_mark,
                      "\"%s\" section must be a mapping", m->name);
        return PD_ERROR;
    }

    w->cf.cycle->enabled[m->index] = 1;
    w->marks[m->index] = key->start_mark;

    for (pair = value->data.mapping.pairs.start;
         pair < value->data.mapping.pairs.top;
         pair++)
    {
        k = yaml_document_get_node(doc, pair->key);
        v = yaml_document_get_node(doc, pair->value);

        if (pd_conf_check_key(w, k) != PD_OK) {
            return PD_ERROR;
        }

        cmd = pd_conf_find_command(m->commands, k);
        if (cmd == NULL) {
            pd_conf_error(w, &k->start_mark,
                          "unknown directive \"%.*s\" in section \"%s\"",
                          (int) k->data.scalar.length, k->data.scalar.value,
                          m->name);
            return PD_ERROR;
        }

        if (pd_conf_seen_before(doc, value, pair)) {
            pd_conf_error(w, &k->start_mark, "\"%s\" directive is duplicate",
                          cmd->name);
            return PD_ERROR;
        }

        if (pd_conf_handle(w, m, cmd, k, v) != PD_OK) {
            return PD_ERROR;
        }
    }

    return PD_OK;
}


/*
 * Calls the setter and places its phrase: a duplicate at the key, any
 * other phrase at the value (or at cf->err_node, a list item), except
 * that an empty value points at its key, since libyaml marks an empty
 * scalar where the next token starts.
 */
static pd_int_t
pd_conf_handle(pd_conf_walk_t *w, pd_module_t *m, pd_command_t *cmd,
    yaml_node_t *key, yaml_node_t *value)
{
    pd_conf_t         *cf;
    const char        *rv;
    yaml_node_t       *at;
    pd_conf_placed_t  *pl;

    cf = &w->cf;
    cf->key = key;
    cf->node = value;
    cf->err_node = NULL;
    pd_conf_node_str(value, &cf->value);

    if (cmd->type != PD_CONF_ANY && pd_conf_is_null(value)) {
        pd_conf_error(w, &key->start_mark, "\"%s\" must have a value",
                      cmd->name);
        return PD_ERROR;
    }

    rv = cmd->set(cf, cmd, w->cf.cycle->conf_ctx[m->index]);
    if (rv == PD_CONF_OK) {
        pl = pd_array_push(w->placed);
        if (pl == NULL) {
            pd_conf_error(w, NULL, "out of memory");
            return PD_ERROR;
        }

        pl->module = m->index;
        pl->name = cmd->name;
        pl->mark = pd_conf_is_empty(value) ? key->start_mark
                                           : value->start_mark;
        return PD_OK;
    }

    if (strcmp(rv, pd_conf_duplicate) == 0) {
        pd_conf_error(w, &key->start_mark, "\"%s\" directive is duplicate",
                      cmd->name);
        return PD_ERROR;
    }

    at = cf->err_node ? cf->err_node : value;
    if (pd_conf_is_empty(at)) {
        at = key;
    }

    pd_conf_error(w, &at->start_mark, "\"%s\" %s", cmd->name, rv);
    return PD_ERROR;
}


/* init_conf for every module: defaults exist even for absent sections */
static pd_int_t
pd_conf_init_modules(pd_conf_walk_t *w)
{
    pd_uint_t     i;
    pd_cycle_t   *cycle;
    const char   *rv;
    pd_module_t  *m;
    yaml_mark_t  *mark;

    cycle = w->cf.cycle;

    for (i = 0; i < w->nmodules; i++) {
        m = pd_modules[i];

        if (m->init_conf == NULL) {
            continue;
        }

        rv = m->init_conf(cycle, cycle->conf_ctx[i]);
        if (rv == PD_CONF_OK) {
            continue;
        }

        mark = pd_conf_phrase_mark(w, i, rv);

        if (m->toplevel) {
            pd_conf_error(w, mark ? mark : &w->root_mark, "%s", rv);

        } else if (cycle->enabled[i]) {
            pd_conf_error(w, mark ? mark : &w->marks[i], "\"%s\" %s",
                          m->name, rv);

        } else {
            pd_conf_error(w, &w->root_mark, "\"%s\" %s", m->name, rv);
        }

        return PD_ERROR;
    }

    return PD_OK;
}


/*
 * init_conf checks directives against each other ("\"ttl\" is above
 * \"max_ttl\"") once the whole file is read.  Its phrase names them in
 * quotes; the first one set in the file is where the operator must look,
 * not the section's first line.  NULL when none of them was set (a
 * missing directive: the section is the place).
 */
static yaml_mark_t *
pd_conf_phrase_mark(pd_conf_walk_t *w, pd_uint_t module, const char *phrase)
{
    const char        *p, *end;
    size_t             len;
    pd_uint_t          i;
    pd_conf_placed_t  *pl;

    pl = w->placed->elts;

    for (p = strchr(phrase, '"'); p != NULL; p = strchr(end + 1, '"')) {
        end = strchr(p + 1, '"');
        if (end == NULL) {
            return NULL;
        }

        len = (size_t) (end - p - 1);

        for (i = 0; i < w->placed->nelts; i++) {
            if (pl[i].module == module && strlen(pl[i].name) == len
                && memcmp(pl[i].name, p + 1, len) == 0)
            {
                return &pl[i].mark;
            }
        }
    }

    return NULL;
}


/*
 * "file:line:column: message"; without a mark the message stands alone
 * (it names the file itself when that matters: open() failed).
 */
static void
pd_conf_error(pd_conf_walk_t *w, yaml_mark_t *mark, const char *fmt, ...)
{
    u_char   *p, *last;
    va_list   args;

    if (w->errlen == 0) {
        return;
    }

    p = w->err;
    last = w->err + w->errlen - 1;

    if (mark != NULL) {
        p = pd_slprintf(p, last, "%.*s:%zu:%zu: ", (int) w->cf.file.len,
                        w->cf.file.data, mark->line + 1, mark->column + 1);
    }

    va_start(args, fmt);
    p = pd_vslprintf(p, last, fmt, args);
    va_end(args);

    *p = '\0';
}


static pd_int_t
pd_conf_check_key(pd_conf_walk_t *w, yaml_node_t *key)
{
    if (key->type != YAML_SCALAR_NODE) {
        pd_conf_error(w, &key->start_mark,
                      "a directive name must be a string");
        return PD_ERROR;
    }

    return PD_OK;
}


/* a quadratic scan, but a mapping holds a few dozen keys at most */
static pd_uint_t
pd_conf_seen_before(yaml_document_t *doc, yaml_node_t *mapping,
    yaml_node_pair_t *pair)
{
    yaml_node_t       *key, *k;
    yaml_node_pair_t  *p;

    key = yaml_document_get_node(doc, pair->key);

    for (p = mapping->data.mapping.pairs.start; p < pair; p++) {
        k = yaml_document_get_node(doc, p->key);

        if (k->type == YAML_SCALAR_NODE
            && k->data.scalar.length == key->data.scalar.length
            && memcmp(k->data.scalar.value, key->data.scalar.value,
                      key->data.scalar.length) == 0)
        {
            return 1;
        }
    }

    return 0;
}


static pd_command_t *
pd_conf_find_command(pd_command_t *cmd, yaml_node_t *key)
{
    if (cmd == NULL) {
        return NULL;
    }

    for ( /* void */ ; cmd->name != NULL; cmd++) {
        if (pd_conf_key_is(key, cmd->name)) {
            return cmd;
        }
    }

    return NULL;
}


static pd_uint_t
pd_conf_key_is(yaml_node_t *key, const char *name)
{
    size_t  len;

    len = strlen(name);

    return key->data.scalar.length == len
           && memcmp(key->data.scalar.value, name, len) == 0;
}


/*
 * The document API tags every untagged scalar as a string, so a YAML
 * null is recognised by its plain spelling (or an explicit !!null).
 */
static pd_uint_t
pd_conf_is_null(yaml_node_t *node)
{
    pd_str_t  s;

    if (node->type != YAML_SCALAR_NODE) {
        return 0;
    }

    if (node->tag != NULL
        && strcmp((char *) node->tag, YAML_NULL_TAG) == 0)
    {
        return 1;
    }

    if (node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return 0;
    }

    s.data = node->data.scalar.value;
    s.len = node->data.scalar.length;

    return s.len == 0
           || (s.len == 1 && s.data[0] == '~')
           || (s.len == 4 && (memcmp(s.data, "null", 4) == 0
                              || memcmp(s.data, "Null", 4) == 0
                              || memcmp(s.data, "NULL", 4) == 0));
}


static pd_uint_t
pd_conf_is_empty(yaml_node_t *node)
{
    return node->type == YAML_SCALAR_NODE
           && node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE
           && node->data.scalar.length == 0;
}


/* the scalar's text, or { 0, NULL } for a collection */
static void
pd_conf_node_str(yaml_node_t *node, pd_str_t *s)
{
    if (node->type != YAML_SCALAR_NODE) {
        s->len = 0;
        s->data = NULL;
        return;
    }

    s->len = node->data.scalar.length;
    s->data = node->data.scalar.value;
}


static pd_uint_t
pd_conf_eq_ci(pd_str_t *s, const char *lit)
{
    size_t  len;

    len = strlen(lit);

    return s->len == len
           && strncasecmp((char *) s->data, lit, len) == 0;
}


/*
 * [-]digits into *value; PD_DECLINED when the digits overflow (the value
 * is then clamped, so the caller can report its bounds), PD_ERROR when
 * the text is not a number at all.
 */
static pd_int_t
pd_conf_atoi64(pd_str_t *s, int64_t *value)
{
    u_char    *p, *last;
    int64_t    n, d;
    pd_uint_t  neg;

    p = s->data;
    last = p + s->len;
    neg = 0;

    if (p < last && *p == '-') {
        neg = 1;
        p++;
    }

    if (p == last) {
        return PD_ERROR;
    }

    for (n = 0; p < last; p++) {
        if (*p < '0' || *p > '9') {
            return PD_ERROR;
        }

        d = *p - '0';

        if (n > (INT64_MAX - d) / 10) {
            while (++p < last) {
                if (*p < '0' || *p > '9') {
                    return PD_ERROR;
                }
            }

            *value = neg ? INT64_MIN : INT64_MAX;
            return PD_DECLINED;
        }

        n = n * 10 + d;
    }

    *value = neg ? -n : n;
    return PD_OK;
}


/*
 * Digits and an optional suffix from units; -1 on error or overflow.
 * The longest suffix wins, so "250ms" is not read as "250m" + "s".
 */
static int64_t
pd_conf_scale(pd_str_t *s, const pd_conf_unit_t *units, int64_t bare)
{
    size_t                 len, slen, best;
    int64_t                n, scale;
    pd_str_t               digits;
    const pd_conf_unit_t  *u;

    len = s->len;
    scale = bare;
    best = 0;

    for (u = units; u->suffix != NULL; u++) {
        slen = strlen(u->suffix);

        if (slen > best && len > slen
            && memcmp(s->data + len - slen, u->suffix, slen) == 0)
        {
            scale = u->unit;
            best = slen;
        }
    }

    len -= best;
    digits.data = s->data;
    digits.len = len;

    if (len == 0 || s->data[0] == '-') {
        return -1;
    }

    if (pd_conf_atoi64(&digits, &n) != PD_OK) {
        return -1;
    }

    if (n > INT64_MAX / scale) {
        return -1;
    }

    return n * scale;
}


/*
 * Returns bytes, or -1 when s is not "digits[k|K|m|M|g|G]" or the value
 * overflows.
 */
int64_t
pd_parse_size(pd_str_t *s)
{
    return pd_conf_scale(s, pd_conf_size_units, 1);
}


/*
 * Returns milliseconds, or -1 when s is not "digits[ms|s|m|h|d]" or the
 * value overflows; bare digits are seconds.
 */
int64_t
pd_parse_duration(pd_str_t *s)
{
    return pd_conf_scale(s, pd_conf_duration_units, PD_CONF_SEC);
}


/* a setter's phrase formatted in cf->errbuf, which it returns */
static const char *
pd_conf_phrase(pd_conf_t *cf, const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    va_start(args, fmt);
    p = pd_vslprintf(cf->errbuf, cf->errbuf + cf->errlen - 1, fmt, args);
    va_end(args);

    *p = '\0';

    return (const char *) cf->errbuf;
}


/* the phrase "must be between MIN and MAX", built in cf->errbuf */
static const char *
pd_conf_bounds_error(pd_conf_t *cf, int64_t min, int64_t max,
    const pd_conf_unit_t *units)
{
    u_char  *p, *last;

    p = cf->errbuf;
    last = cf->errbuf + cf->errlen - 1;

    p = pd_slprintf(p, last, "must be between ");
    p = pd_conf_unit_text(p, last, min, units);
    p = pd_slprintf(p, last, " and ");
    p = pd_conf_unit_text(p, last, max, units);
    *p = '\0';

    return (const char *) cf->errbuf;
}


/* v in the largest unit that divides it exactly ("64k", "30s") */
static u_char *
pd_conf_unit_text(u_char *p, u_char *last, int64_t v,
    const pd_conf_unit_t *units)
{
    const pd_conf_unit_t  *u;

    if (units != NULL && v > 0) {
        for (u = units; u->suffix != NULL; u++) {
            if (v % u->unit == 0) {
                return pd_slprintf(p, last, "%lld%s",
                                   (long long) (v / u->unit), u->suffix);
            }
        }
    }

    return pd_slprintf(p, last, "%lld", (long long) v);
}


/*
 * true/false, yes/no, on/off in any case into a pd_int_t; the field is
 * PD_CONF_UNSET until set.
 */
const char *
pd_conf_set_flag_slot(pd_conf_t *cf, pd_command_t *cmd, void *conf)
{
    pd_int_t  *fp;

    fp = (pd_int_t *) ((u_char *) conf + cmd->offset);

    if (*fp != PD_CONF_UNSET) {
        return pd_conf_duplicate;
    }

    if (cf->value.data == NULL) {
        return "must be true or false";
    }

    if (pd_conf_eq_ci(&cf->value, "true")
        || pd_conf_eq_ci(&cf->value, "yes")
        || pd_conf_eq_ci(&cf->value, "on"))
    {
        *fp = 1;
        return PD_CONF_OK;
    }

    if (pd_conf_eq_ci(&cf->value, "false")
        || pd_conf_eq_ci(&cf->value, "no")
        || pd_conf_eq_ci(&cf->value, "off"))
    {
        *fp = 0;
        return PD_CONF_OK;
    }

    return "must be true or false";
}


/*
 * An integer into a pd_int_t within the pd_conf_bounds_t in cmd->post
 * (without one: 0 and up); the field is PD_CONF_UNSET until set.
 */
const char *
pd_conf_set_num_slot(pd_conf_t *cf, pd_command_t *cmd, void *conf)
{
    int64_t            n, min, max;
    pd_int_t          *np;
    pd_conf_bounds_t  *b;

    np = (pd_int_t *) ((u_char *) conf + cmd->offset);

    if (*np != PD_CONF_UNSET) {
        return pd_conf_duplicate;
    }

    if (cf->value.data == NULL || pd_conf_atoi64(&cf->value, &n) == PD_ERROR)
    {
        return "must be a number";
    }

    b = cmd->post;
    min = b ? b->min : 0;
    max = b ? b->max : PD_MAX_INT_T_VALUE;

    if (n < min || n > max) {
        return pd_conf_bounds_error(cf, min, max, NULL);
    }

    *np = (pd_int_t) n;
    return PD_CONF_OK;
}


/*
 * Bytes ("512", "64k", "2m", "1g") into a size_t within the bounds in
 * cmd->post; the field is PD_CONF_UNSET_SIZE until set.
 */
const char *
pd_conf_set_size_slot(pd_conf_t *cf, pd_command_t *cmd, void *conf)
{
    size_t            *sp;
    int64_t            n, min, max;
    pd_conf_bounds_t  *b;

    sp = (size_t *) ((u_char *) conf + cmd->offset);

    if (*sp != PD_CONF_UNSET_SIZE) {
        return pd_conf_duplicate;
    }

    if (cf->value.data == NULL) {
        return "must be a size";
    }

    n = pd_parse_size(&cf->value);
    if (n == -1) {
        return pd_conf_phrase(cf, "invalid size \"%.*s\"",
                              (int) cf->value.len, cf->value.data);
    }

    b = cmd->post;
    min = b ? b->min : 0;
    max = b ? b->max : INT64_MAX;

    if (n < min || n > max) {
        return pd_conf_bounds_error(cf, min, max, pd_conf_size_units);
    }

    *sp = (size_t) n;
    return PD_CONF_OK;
}


/*
 * A duration ("250ms", "30s", "5m", "1h", "1d"; bare digits are seconds)
 * into a pd_msec_t within the bounds (in ms) in cmd->post; the field is
 * PD_CONF_UNSET_MSEC until set.
 */
const char *
pd_conf_set_msec_slot(pd_conf_t *cf, pd_command_t *cmd, void *conf)
{
    int64_t            n, min, max;
    pd_msec_t         *mp;
    pd_conf_bounds_t  *b;

    mp = (pd_msec_t *) ((u_char *) conf + cmd->offset);

    if (*mp != PD_CONF_UNSET_MSEC) {
        return pd_conf_duplicate;
    }

    if (cf->value.data == NULL) {
        return "must be a duration";
    }

    n = pd_parse_duration(&cf->value);
    if (n == -1) {
        return pd_conf_phrase(cf, "invalid duration \"%.*s\"",
                              (int) cf->value.len, cf->value.data);
    }

    b = cmd->post;
    min = b ? b->min : 0;
    max = b ? b->max : INT64_MAX;

    if (n < min || n > max) {
        return pd_conf_bounds_error(cf, min, max, pd_conf_duration_units);
    }

    *mp = (pd_msec_t) n;
    return PD_CONF_OK;
}


/*
 * A scalar copied into the pool as a NUL-terminated pd_str_t; unset
 * while data is NULL.
 */
const char *
pd_conf_set_str_slot(pd_conf_t *cf, pd_command_t *cmd, void *conf)
{
    u_char    *p;
    pd_str_t  *field;

    field = (pd_str_t *) ((u_char *) conf + cmd->offset);

    if (field->data != NULL) {
        return pd_conf_duplicate;
    }

    if (cf->value.data == NULL) {
        return "must be a string";
    }

    p = pd_pnalloc(cf->pool, cf->value.len + 1);
    if (p == NULL) {
        return "out of memory";
    }

    pd_memcpy(p, cf->value.data, cf->value.len);
    p[cf->value.len] = '\0';

    field->data = p;
    field->len = cf->value.len;

    return PD_CONF_OK;
}


/*
 * As pd_conf_set_str_slot(), for a secret (a token key, an API key, a
 * password): the placeholders shipped in conf/pushd.yaml start with
 * "change-me", and a daemon running with one is open to anyone who read
 * the file, so any value that starts so is refused.
 */
const char *
pd_conf_set_secret_slot(pd_conf_t *cf, pd_command_t *cmd, void *conf)
{
    if (cf->value.data != NULL
        && cf->value.len >= sizeof(PD_CONF_PLACEHOLDER) - 1
        && strncasecmp((char *) cf->value.data, PD_CONF_PLACEHOLDER,
                       sizeof(PD_CONF_PLACEHOLDER) - 1) == 0)
    {
        return "is the placeholder shipped in the sample configuration: "
               "set your own long random value (openssl rand -hex 32)";
    }

    return pd_conf_set_str_slot(cf, cmd, conf);
}

/*
 * A sequence of scalars (or one scalar) into a pd_array_t * of pd_str_t,
 * each NUL-terminated; unset while the pointer is NULL.
 */
const char *
pd_conf_set_list_slot(pd_conf_t *cf, pd_command_t *cmd, void *conf)
{
    return pd_conf_set_scalars(cf, (pd_array_t **) ((u_char *) conf
                                                    + cmd->offset),
                               sizeof(pd_str_t), 0);
}


/*
 * "[addr:]port [ssl]" entries, a sequence or one scalar, into a
 * pd_array_t * of pd_listen_conf_t; unset while the pointer is NULL.
 */
const char *
pd_conf_set_listen_slot(pd_conf_t *cf, pd_command_t *cmd, void *conf)
{
    return pd_conf_set_scalars(cf, (pd_array_t **) ((u_char *) conf
                                                    + cmd->offset),
                               sizeof(pd_listen_conf_t), 1);
}


const char *
pd_conf_set_each(pd_conf_t *cf, void *conf, pd_array_t **ap, size_t size,
    pd_uint_t n, pd_uint_t nonempty, const char *what, pd_conf_item_pt item)
{
    const char        *rv;
    yaml_node_t       *node = cf->node;
    yaml_node_item_t  *i;

    if (*ap != NULL) {
        return pd_conf_duplicate;
    }

    if (node->type != YAML_SEQUENCE_NODE
        || (nonempty && node->data.sequence.items.start
                        == node->data.sequence.items.top))
    {
        return what;
    }

    *ap = pd_array_create(cf->pool, n, size);
    if (*ap == NULL) {
        return "out of memory";
    }

    for (i = node->data.sequence.items.start;
         i < node->data.sequence.items.top; i++)
    {
        rv = item(cf, conf, yaml_document_get_node(cf->doc, *i));
        if (rv != PD_CONF_OK) {
            return rv;
        }
    }

    return PD_CONF_OK;
}


/* the shared walk of LIST and LISTEN; a bad item becomes cf->err_node */
static const char *
pd_conf_set_scalars(pd_conf_t *cf, pd_array_t **ap, size_t size,
    pd_uint_t listen)
{
    u_char            *p;
    pd_str_t           s, *str;
    pd_uint_t          i, n;
    pd_array_t        *a;
    const char        *rv;
    yaml_node_t       *node, *item;
    yaml_node_item_t  *items;
    pd_listen_conf_t  *lc;

    if (*ap != NULL) {
        return pd_conf_duplicate;
    }

    node = cf->node;

    if (node->type == YAML_SCALAR_NODE) {
        items = NULL;
        n = 1;

    } else if (node->type == YAML_SEQUENCE_NODE) {
        items = node->data.sequence.items.start;
        n = node->data.sequence.items.top - items;

    } else {
        return "must be a string or a list of strings";
    }

    a = pd_array_create(cf->pool, n ? n : 1, size);
    if (a == NULL) {
        return "out of memory";
    }

    for (i = 0; i < n; i++) {
        item = items ? yaml_document_get_node(cf->doc, items[i]) : node;

        if (item->type != YAML_SCALAR_NODE || pd_conf_is_null(item)) {
            cf->err_node = item;
            return "must be a string or a list of strings";
        }

        s.data = item->data.scalar.value;
        s.len = item->data.scalar.length;

        if (listen) {
            lc = pd_array_push(a);
            if (lc == NULL) {
                return "out of memory";
            }

            rv = pd_parse_listen(&s, lc, cf->pool);
            if (rv != NULL) {
                cf->err_node = item;
                return pd_conf_phrase(cf, "invalid listen \"%.*s\", %s",
                                      (int) s.len, s.data, rv);
            }

            continue;
        }

        str = pd_array_push(a);
        p = pd_pnalloc(cf->pool, s.len + 1);
        if (str == NULL || p == NULL) {
            return "out of memory";
        }

        pd_memcpy(p, s.data, s.len);
        p[s.len] = '\0';
        str->data = p;
        str->len = s.len;
    }

    *ap = a;
    return PD_CONF_OK;
}


/*
 * One of the values in the pd_conf_enum_t array in cmd->post (ended by an
 * empty name), any case, into a pd_uint_t; PD_CONF_UNSET_UINT until set.
 */
const char *
pd_conf_set_enum_slot(pd_conf_t *cf, pd_command_t *cmd, void *conf)
{
    u_char          *p, *last;
    pd_uint_t       *vp;
    pd_conf_enum_t  *e;

    vp = (pd_uint_t *) ((u_char *) conf + cmd->offset);

    if (*vp != PD_CONF_UNSET_UINT) {
        return pd_conf_duplicate;
    }

    if (cf->value.data != NULL) {
        for (e = cmd->post; e->name.len != 0; e++) {
            if (e->name.len == cf->value.len
                && strncasecmp((char *) e->name.data, (char *) cf->value.data,
                               cf->value.len) == 0)
            {
                *vp = e->value;
                return PD_CONF_OK;
            }
        }
    }

    /* must be "a", "b" or "c" */
    p = cf->errbuf;
    last = cf->errbuf + cf->errlen - 1;
    p = pd_slprintf(p, last, "must be");

    for (e = cmd->post; e->name.len != 0; e++) {
        p = pd_slprintf(p, last, "%s\"%.*s\"",
                        e == cmd->post ? " "
                        : (e + 1)->name.len == 0 ? " or " : ", ",
                        (int) e->name.len, e->name.data);
    }

    *p = '\0';
    return (const char *) cf->errbuf;
}


/*
 * One "ip:port" or "[ipv6]:port" (numeric: nothing is resolved) into the
 * pd_listen_conf_t at the offset; unset while its socklen is 0.
 */
const char *
pd_conf_set_addr_slot(pd_conf_t *cf, pd_command_t *cmd, void *conf)
{
    const char        *rv;
    pd_listen_conf_t  *lc;

    lc = (pd_listen_conf_t *) ((u_char *) conf + cmd->offset);

    if (lc->socklen != 0) {
        return pd_conf_duplicate;
    }

    if (cf->value.data == NULL) {
        return "must be an address";
    }

    rv = pd_conf_parse_addr(&cf->value, lc, 0);
    if (rv == NULL && pd_conf_addr_text(lc, cf->pool) != PD_OK) {
        rv = "out of memory";
    }

    if (rv != NULL) {
        pd_memzero(lc, sizeof(pd_listen_conf_t));
        return pd_conf_phrase(cf, "invalid address \"%.*s\", %s",
                              (int) cf->value.len, cf->value.data, rv);
    }

    return PD_CONF_OK;
}


/*
 * "[addr:]port [ssl]": addr is an IPv4 address, "*" or "[ipv6]", absent
 * meaning every IPv4 address.  Fills lc (text allocated in the pool) and
 * returns NULL, or a static phrase saying what is wrong.
 */
const char *
pd_parse_listen(pd_str_t *s, pd_listen_conf_t *lc, pd_pool_t *pool)
{
    u_char      *p, *last;
    pd_str_t     addr, param;
    const char  *rv;

    pd_memzero(lc, sizeof(pd_listen_conf_t));

    p = s->data;
    last = p + s->len;

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    addr.data = p;

    while (p < last && *p != ' ' && *p != '\t') {
        p++;
    }

    addr.len = p - addr.data;

    if (addr.len == 0) {
        return "a port is required";
    }

    rv = pd_conf_parse_addr(&addr, lc,
                            PD_CONF_ADDR_PORT_ONLY | PD_CONF_ADDR_WILDCARD);
    if (rv != NULL) {
        return rv;
    }

    for ( ;; ) {
        while (p < last && (*p == ' ' || *p == '\t')) {
            p++;
        }

        if (p == last) {
            break;
        }

        param.data = p;

        while (p < last && *p != ' ' && *p != '\t') {
            p++;
        }

        param.len = p - param.data;

        if (param.len == 3 && memcmp(param.data, "ssl", 3) == 0) {
            lc->ssl = 1;
            continue;
        }

        return "unknown parameter";
    }

    if (pd_conf_addr_text(lc, pool) != PD_OK) {
        return "out of memory";
    }

    return NULL;
}


/* the address part of a listen or an address value, without text */
static const char *
pd_conf_parse_addr(pd_str_t *s, pd_listen_conf_t *lc, pd_uint_t flags)
{
    u_char               *p, *last, *colon, *host_end;
    size_t                len;
    pd_int_t              port;
    struct sockaddr_in   *sin;
    struct sockaddr_in6  *sin6;
    char                  host[INET6_ADDRSTRLEN];

    pd_memzero(&lc->sockaddr, sizeof(struct sockaddr_storage));

    p = s->data;
    last = p + s->len;

    if (p < last && *p == '[') {
        host_end = memchr(p, ']', last - p);
        if (host_end == NULL) {
            return "the IPv6 address misses \"]\"";
        }

        len = host_end - (p + 1);
        if (len == 0 || len >= sizeof(host)) {
            return "invalid IPv6 address";
        }

        pd_memcpy(host, p + 1, len);
        host[len] = '\0';

        if (host_end + 1 == last || host_end[1] != ':') {
            return "a port is required";
        }

        port = pd_conf_parse_port(host_end + 2, last);
        if (port < 0) {
            return port == PD_ERROR ? "invalid port"
                                    : "port must be between 1 and 65535";
        }

        sin6 = (struct sockaddr_in6 *) &lc->sockaddr;
        if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
            return "invalid IPv6 address";
        }

        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t) port);
        lc->socklen = sizeof(struct sockaddr_in6);

        return NULL;
    }

    colon = NULL;

    for (host_end = p; host_end < last; host_end++) {
        if (*host_end == ':') {
            if (colon != NULL) {
                return "an IPv6 address must be in brackets";
            }
            colon = host_end;
        }
    }

    sin = (struct sockaddr_in *) &lc->sockaddr;
    sin->sin_family = AF_INET;
    lc->socklen = sizeof(struct sockaddr_in);

    if (colon == NULL) {
        port = pd_conf_parse_port(p, last);

        if (!(flags & PD_CONF_ADDR_PORT_ONLY)) {
            return port == PD_ERROR ? "a port is required"
                                    : "an address is required";
        }

        if (port == PD_ERROR) {
            return "invalid port";
        }

        if (port < 0) {
            return "port must be between 1 and 65535";
        }

        sin->sin_addr.s_addr = htonl(INADDR_ANY);
        sin->sin_port = htons((uint16_t) port);

        return NULL;
    }

    len = colon - p;

    port = pd_conf_parse_port(colon + 1, last);
    if (port < 0) {
        return port == PD_ERROR ? "invalid port"
                                : "port must be between 1 and 65535";
    }

    sin->sin_port = htons((uint16_t) port);

    if (len == 1 && *p == '*' && (flags & PD_CONF_ADDR_WILDCARD)) {
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
        return NULL;
    }

    if (len == 0 || len >= sizeof(host)) {
        return "the host must be a numeric IP address";
    }

    pd_memcpy(host, p, len);
    host[len] = '\0';

    if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
        return "the host must be a numeric IP address";
    }

    return NULL;
}


/* 1..65535, PD_ERROR when not digits, PD_DECLINED when out of range */
static pd_int_t
pd_conf_parse_port(u_char *p, u_char *last)
{
    int64_t   n;
    pd_str_t  s;

    s.data = p;
    s.len = last - p;

    if (s.len == 0 || *p == '-') {
        return PD_ERROR;
    }

    switch (pd_conf_atoi64(&s, &n)) {

    case PD_ERROR:
        return PD_ERROR;

    case PD_DECLINED:
        return PD_DECLINED;

    default:
        break;
    }

    if (n < 1 || n > 65535) {
        return PD_DECLINED;
    }

    return (pd_int_t) n;
}


/* "1.2.3.4:80" or "[::1]:80" into lc->text, NUL-terminated, in the pool */
static pd_int_t
pd_conf_addr_text(pd_listen_conf_t *lc, pd_pool_t *pool)
{
    u_char               *text, *p, *last;
    struct sockaddr_in   *sin;
    struct sockaddr_in6  *sin6;
    char                  host[INET6_ADDRSTRLEN];

    text = pd_pnalloc(pool, PD_CONF_ADDR_TEXT_LEN);
    if (text == NULL) {
        return PD_ERROR;
    }

    last = text + PD_CONF_ADDR_TEXT_LEN - 1;

    if (lc->sockaddr.ss_family == AF_INET6) {
        sin6 = (struct sockaddr_in6 *) &lc->sockaddr;
        (void) inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
        p = pd_slprintf(text, last, "[%s]:%u", host,
                        (unsigned) ntohs(sin6->sin6_port));

    } else {
        sin = (struct sockaddr_in *) &lc->sockaddr;
        (void) inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
        p = pd_slprintf(text, last, "%s:%u", host,
                        (unsigned) ntohs(sin->sin_port));
    }

    *p = '\0';
    lc->text.data = text;
    lc->text.len = p - text;

    return PD_OK;
}


/*
 * Makes a relative name absolute against cycle->prefix (with or without
 * its trailing '/'); an absolute name is kept.  Either way name ends up
 * a NUL-terminated copy in the cycle pool.  PD_ERROR on an empty name or
 * when the pool is exhausted.
 */
pd_int_t
pd_conf_full_name(pd_cycle_t *cycle, pd_str_t *name)
{
    u_char    *p, *d;
    size_t     len, plen;
    pd_uint_t  slash;

    if (name->len == 0 || name->data == NULL) {
        return PD_ERROR;
    }

    plen = 0;
    slash = 0;

    if (name->data[0] != '/' && cycle->prefix.len > 0) {
        plen = cycle->prefix.len;
        slash = cycle->prefix.data[plen - 1] != '/';
    }

    len = plen + slash + name->len;

    d = pd_pnalloc(cycle->pool, len + 1);
    if (d == NULL) {
        return PD_ERROR;
    }

    p = d;

    if (plen) {
        p = pd_cpymem(p, cycle->prefix.data, plen);
    }

    if (slash) {
        *p++ = '/';
    }
    p = pd_cpymem(p, name->data, name->len);
    *p = '\0';

    name->data = d;
    name->len = len;

    return PD_OK;
}
