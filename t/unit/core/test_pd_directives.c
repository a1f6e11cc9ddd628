/*
 * test_pd_directives.c: docs/directives.md is generated from the modules'
 * directive tables (their doc strings); this test fails when the file and
 * the tables disagree.  `make docs` rewrites the file.
 */

#include "pd_core.h"

#include <setjmp.h>
#include <cmocka.h>

static const char *
pd_doc_type(pd_uint_t type)
{
    switch (type) {
    case PD_CONF_FLAG:     return "flag";
    case PD_CONF_NUMBER:   return "number";
    case PD_CONF_SIZE:     return "size";
    case PD_CONF_DURATION: return "duration";
    case PD_CONF_STRING:   return "string";
    case PD_CONF_LIST:     return "list";
    case PD_CONF_ENUM:     return "enum";
    case PD_CONF_LISTEN:   return "listen list";
    case PD_CONF_ADDRESS:  return "address";
    default:               return "value";
    }
}

static char *
pd_doc_generate(size_t *len)
{
    pd_command_t  *cmd;
    FILE          *f;
    char          *buf;
    pd_uint_t      i;

    f = open_memstream(&buf, len);
    assert_non_null(f);

    fprintf(f, "# pushd configuration directives\n\n"
            "Generated from the directive tables in the source by `make "
            "docs`;\na unit test fails when this file and the tables "
            "disagree.\n\n"
            "Durations: `500ms`, `30s`, `5m`, `1h`, `1d` (a bare number "
            "is seconds).\nSizes: `512`, `64k`, `2m`, `1g`.  Relative paths "
            "are resolved against the\nprefix (`pushd -p`).\n");

    for (i = 0; pd_modules[i] != NULL; i++) {
        if (pd_modules[i]->commands == NULL) {
            continue;
        }

        if (pd_modules[i]->toplevel) {
            fprintf(f, "\n## Top level\n\n");
        } else {
            fprintf(f, "\n## `%s:`\n\nThe section enables the module.\n\n",
                    pd_modules[i]->name);
        }

        fprintf(f, "| directive | type | meaning |\n|---|---|---|\n");

        for (cmd = pd_modules[i]->commands; cmd->name != NULL; cmd++) {
            fprintf(f, "| `%s` | %s | %s |\n", cmd->name,
                    pd_doc_type(cmd->type), cmd->doc ? cmd->doc : "");
        }
    }

    fclose(f);
    return buf;
}

static void
test_every_directive_is_documented(void **state)
{
    pd_command_t  *cmd;
    pd_uint_t      i;

    (void) state;

    for (i = 0; pd_modules[i] != NULL; i++) {
        for (cmd = pd_modules[i]->commands; cmd && cmd->name; cmd++) {
            assert_non_null(cmd->doc);
            assert_true(strlen(cmd->doc) > 10);
        }
    }
}

static void
test_docs_file_is_current(void **state)
{
    char     *gen, *path, *old;
    size_t    len, olen;
    FILE     *f;

    (void) state;

    gen = pd_doc_generate(&len);
    path = getenv("PD_DOCS_FILE");
    if (path == NULL) {
        path = "docs/directives.md";
    }

    if (getenv("PD_WRITE_DOCS") != NULL) {
        f = fopen(path, "w");
        assert_non_null(f);
        assert_int_equal(fwrite(gen, 1, len, f), len);
        fclose(f);
    }

    f = fopen(path, "r");
    if (f == NULL) {
        fail_msg("%s is missing: run `make docs`", path);
    }

    old = malloc(len + 2);
    assert_non_null(old);
    olen = fread(old, 1, len + 1, f);
    fclose(f);

    if (olen != len || memcmp(old, gen, len) != 0) {
        free(old);
        free(gen);
        fail_msg("%s is out of date: run `make docs`", path);
    }

    free(old);
    free(gen);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_directive_is_documented),
        cmocka_unit_test(test_docs_file_is_current),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
