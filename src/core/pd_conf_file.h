/*
 * pd_conf_file.h: the YAML configuration.  Each module declares a table
 * of directives; one dispatcher walks the document, finds the directive,
 * calls its setter and formats every error as
 *   file:line:column: "key" phrase
 * from libyaml's marks.  Setters write by offset into the module's conf.
 */

#ifndef PD_CONF_FILE_H
#define PD_CONF_FILE_H

#include <yaml.h>

/* directive value types */
#define PD_CONF_FLAG       1   /* true/false, on/off, yes/no */
#define PD_CONF_NUMBER     2   /* integer; post: pd_conf_bounds_t */
#define PD_CONF_SIZE       3   /* 512, 64k, 2m, 1g; post: bounds (bytes) */
#define PD_CONF_DURATION   4   /* 250ms, 30s, 5m, 1h, 1d; bare = s; -> ms */
#define PD_CONF_STRING     5   /* scalar */
#define PD_CONF_LIST       6   /* sequence of scalars (or one scalar) */
#define PD_CONF_ENUM       7   /* post: pd_conf_enum_t[] */
#define PD_CONF_LISTEN     8   /* sequence of "[addr:]port [ssl]" */
#define PD_CONF_ADDRESS    9   /* one "host:port" */
#define PD_CONF_ANY       10   /* custom setter reads cf->node */

typedef const char *(*pd_conf_set_pt)(pd_conf_t *cf, pd_command_t *cmd,
    void *conf);

struct pd_command_s {
    const char        *name;
    pd_uint_t          type;
    pd_conf_set_pt     set;
    size_t             offset;
    void              *post;
    const char        *doc;
};

#define pd_null_command  { NULL, 0, NULL, 0, NULL, NULL }

typedef struct {
    int64_t      min;
    int64_t      max;
} pd_conf_bounds_t;

typedef struct {
    pd_str_t     name;
    pd_uint_t    value;
} pd_conf_enum_t;

/* one entry of a PD_CONF_LISTEN list */
typedef struct {
    struct sockaddr_storage  sockaddr;
    socklen_t                socklen;
    pd_str_t                 text;     /* "127.0.0.1:8080" as normalised */
    unsigned                 ssl:1;
} pd_listen_conf_t;

struct pd_conf_s {
    pd_str_t           file;       /* the configuration file's path */
    yaml_document_t   *doc;
    yaml_node_t       *key;        /* key node of the current directive */
    yaml_node_t       *node;       /* its value node */
    pd_str_t           value;      /* the value when it is a scalar,
                                      else { 0, NULL }; owned by libyaml:
                                      copy what you keep */
    yaml_node_t       *err_node;   /* a setter may point its phrase at
                                      a node inside the value (a list
                                      item); NULL: the value itself */
    pd_cycle_t        *cycle;
    pd_pool_t         *pool;       /* the cycle's pool */
    pd_log_t          *log;
    u_char            *errbuf;     /* setters may format a phrase here */
    size_t             errlen;
};

#define PD_CONF_ERRSTR_SIZE  512

/*
 * A setter returns PD_CONF_OK or a phrase the dispatcher prints after
 * the key: "must be a number" -> file:L:C: "key" must be a number, at the
 * value.  The phrase "is duplicate" (field already set) is printed as
 * "key" directive is duplicate, at the key.  A null value (`~`, empty)
 * is refused before the setter runs ("must have a value", at the key)
 * unless the type is PD_CONF_ANY.  Unset markers: FLAG and NUMBER
 * PD_CONF_UNSET, SIZE PD_CONF_UNSET_SIZE, DURATION PD_CONF_UNSET_MSEC,
 * ENUM PD_CONF_UNSET_UINT, STRING data == NULL, LIST and LISTEN a NULL
 * pd_array_t *, ADDRESS a pd_listen_conf_t with socklen == 0.
 */

/*
 * Parses the file into cycle->conf_ctx: create_conf for every module,
 * the directives, then init_conf for every module (enabled or not).
 * conf_ctx and enabled are allocated in cycle->pool when NULL; a module's
 * section in the file sets enabled[index], a toplevel module is always
 * enabled.  An empty file is an error.  An init_conf phrase is printed
 * at the module's section key as file:L:C: "room" phrase, or for a
 * toplevel module at the start of the document as file:L:C: phrase;
 * when the phrase names (in quotes) a directive set in the file, at
 * that directive instead.
 * On error prints nothing; returns PD_ERROR with the full message
 * ("file:line:column: ...") in err (NUL-terminated, at most errlen).
 */
pd_int_t pd_conf_parse(pd_cycle_t *cycle, pd_str_t *file, u_char *err,
    size_t errlen);

/*
 * Resolves a relative path against the cycle's prefix, in place (the
 * result is allocated in the cycle pool and NUL-terminated).
 */
pd_int_t pd_conf_full_name(pd_cycle_t *cycle, pd_str_t *name);

/*
 * For "pushd -s" when the file has errors: the top-level scalar key of
 * the file, made a full path in cycle's pool (NUL-terminated).  PD_OK
 * when the file loads as YAML and holds key, PD_DECLINED when it loads
 * without it, PD_ERROR when it cannot be loaded.
 */
pd_int_t pd_conf_peek_path(pd_cycle_t *cycle, pd_str_t *file,
    const char *key, pd_str_t *value);

/* how the secrets in the sample configuration start */
#define PD_CONF_PLACEHOLDER  "change-me"

/* generic setters, by offset */
const char *pd_conf_set_flag_slot(pd_conf_t *cf, pd_command_t *cmd, void *conf);
const char *pd_conf_set_num_slot(pd_conf_t *cf, pd_command_t *cmd, void *conf);
const char *pd_conf_set_size_slot(pd_conf_t *cf, pd_command_t *cmd, void *conf);
const char *pd_conf_set_msec_slot(pd_conf_t *cf, pd_command_t *cmd, void *conf);
const char *pd_conf_set_str_slot(pd_conf_t *cf, pd_command_t *cmd, void *conf);
/* a string that must not be a shipped placeholder ("change-me...") */
const char *pd_conf_set_secret_slot(pd_conf_t *cf, pd_command_t *cmd,
    void *conf);
const char *pd_conf_set_list_slot(pd_conf_t *cf, pd_command_t *cmd, void *conf);
const char *pd_conf_set_enum_slot(pd_conf_t *cf, pd_command_t *cmd, void *conf);
const char *pd_conf_set_listen_slot(pd_conf_t *cf, pd_command_t *cmd,
    void *conf);
const char *pd_conf_set_addr_slot(pd_conf_t *cf, pd_command_t *cmd, void *conf);

/*
 * A list of mappings (the coordinator's routes, the dispatcher's nodes)
 * into *ap, a new array of size-byte elements (n at first): "is
 * duplicate" when it is set already, what when the node is not a list
 * (or is empty and nonempty is set), else item() on each member in turn,
 * which pushes and fills its own element and says what is wrong with it.
 */
typedef const char *(*pd_conf_item_pt)(pd_conf_t *cf, void *conf,
    yaml_node_t *node);

const char *pd_conf_set_each(pd_conf_t *cf, void *conf, pd_array_t **ap,
    size_t size, pd_uint_t n, pd_uint_t nonempty, const char *what,
    pd_conf_item_pt item);

/* value parsers shared with the setters and unit tests; -1 on error */
int64_t pd_parse_size(pd_str_t *s);
int64_t pd_parse_duration(pd_str_t *s);   /* milliseconds */
/*
 * "[addr:]port [ssl]", "[::1]:443 ssl", "*:80"; NULL or a static error
 * phrase.  Addresses are numeric (nothing is resolved); lc->text is the
 * normalised "0.0.0.0:80" or "[::1]:443", NUL-terminated, in pool.
 */
const char *pd_parse_listen(pd_str_t *s, pd_listen_conf_t *lc, pd_pool_t *pool);

#endif /* PD_CONF_FILE_H */
