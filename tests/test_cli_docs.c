/* What a user reads about the command agrees with what it does: every option
 * `tapegrad --help` and `tapegrad COMMAND --help` list is in the man page
 * (docs/man/tapegrad.1) and in docs/cli.md, bash completion (tools/tapegrad.bash)
 * offers every command and each command's options, and `train --json` has the
 * keys docs/cli.md lists. The references are the command's own --help texts:
 * the docs are checked against them, never against a copy. */
#define _POSIX_C_SOURCE 200809L /* popen */

#include <criterion/criterion.h>

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "helpers.h" /* read_bytes; TAPEGRAD_SOURCE_DIR and TAPEGRAD_CLI come from CMake */

#define SRC TAPEGRAD_SOURCE_DIR

/* stdout of a shell command; it must exit 0. Caller frees. */
static char *capture(const char *command)
{
    FILE *p = popen(command, "r");
    cr_assert_not_null(p, "cannot run %s", command);
    size_t n = 0, cap = 4096;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    size_t got;
    while ((got = fread(text + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (cap - n < 2) {
            cap *= 2;
            text = realloc(text, cap);
            cr_assert_not_null(text);
        }
    }
    text[n] = 0;
    int status = pclose(p);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s failed (status %d)", command, status);
    return text;
}

static char *read_file(const char *path)
{
    size_t n;
    return (char *)read_bytes(path, &n);
}

/* Drops roff's backslashes (\- is a hyphen), so "\-\-threads" reads "--threads". */
static char *unroff(char *text)
{
    char *w = text;
    for (const char *r = text; *r; r++)
        if (*r != '\\')
            *w++ = *r;
    *w = 0;
    return text;
}

/* The commands `tapegrad --help` lists: lines under "commands:" that start with
 * two spaces and a word (longer indents continue the line above). */
static int commands(char names[][64], int max)
{
    char *help = capture("'" TAPEGRAD_CLI "' --help");
    char *section = strstr(help, "commands:\n");
    cr_assert_not_null(section, "no commands: in --help");
    int n = 0;
    for (char *line = section + strlen("commands:\n"); *line && *line != '\n' && n < max;) {
        if (strncmp(line, "  ", 2) == 0 && islower((unsigned char)line[2]))
            sscanf(line + 2, "%31[a-z]", names[n++]);
        char *end = strchr(line, '\n');
        line = end ? end + 1 : line + strlen(line);
    }
    free(help);
    cr_assert_geq(n, 4, "found %d commands in --help", n);
    return n;
}

/* Every "--word" in text, deduplicated. */
static int long_options(const char *text, char options[][64], int max)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, "--")); p += 2) {
        if (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '-'))
            continue;
        char word[32];
        if (sscanf(p, "--%29[a-z-]", word) != 1)
            continue;
        bool seen = false;
        for (int k = 0; k < n; k++)
            seen |= strcmp(options[k] + 2, word) == 0;
        if (!seen && n < max)
            snprintf(options[n++], 64, "--%s", word);
    }
    return n;
}

static char *command_help(const char *command)
{
    char line[2048];
    cr_assert_lt(snprintf(line, sizeof line, "'%s' %s --help", TAPEGRAD_CLI, command), (int)sizeof line);
    return capture(line);
}

Test(cli_docs, the_man_page_and_cli_md_name_every_option_of_every_command)
{
    char *man = unroff(read_file(SRC "/docs/man/tapegrad.1"));
    char *cli_md = read_file(SRC "/docs/cli.md");
    char names[16][64], options[64][64];
    int n = commands(names, 16);
    char *main_help = capture("'" TAPEGRAD_CLI "' --help");
    int m = long_options(main_help, options, 64);
    for (int k = 0; k < m; k++) {
        cr_expect(strstr(man, options[k]), "tapegrad --help lists %s; docs/man/tapegrad.1 does not", options[k]);
        cr_expect(strstr(cli_md, options[k]), "tapegrad --help lists %s; docs/cli.md does not", options[k]);
    }
    free(main_help);
    for (int c = 0; c < n; c++) {
        char heading[128];
        cr_assert_lt(snprintf(heading, sizeof heading, ".SS \"tapegrad %s", names[c]), (int)sizeof heading);
        cr_expect(strstr(man, heading), "the man page has no section for %s", names[c]);
        char *help = command_help(names[c]);
        m = long_options(help, options, 64);
        cr_assert_geq(m, 1, "tapegrad %s --help lists no option", names[c]);
        for (int k = 0; k < m; k++) {
            cr_expect(strstr(man, options[k]), "tapegrad %s --help lists %s; docs/man/tapegrad.1 does not", names[c],
                      options[k]);
            cr_expect(strstr(cli_md, options[k]), "tapegrad %s --help lists %s; docs/cli.md does not", names[c],
                      options[k]);
        }
        free(help);
    }
    free(man);
    free(cli_md);
}

Test(cli_docs, the_man_page_is_for_this_version)
{
    char *version = capture("'" TAPEGRAD_CLI "' --version"); /* "tapegrad 0.1.0\n" */
    version[strcspn(version, "\n")] = 0;
    char *man = read_file(SRC "/docs/man/tapegrad.1");
    char *th = strstr(man, "\n.TH ");
    cr_assert_not_null(th, "no .TH line");
    th[strcspn(th + 1, "\n") + 1] = 0;
    cr_expect(strstr(th, version), "the man page's title line %s does not name %s", th + 1, version);
    free(man);
    free(version);
}

/* The words completion offers for "tapegrad WORDS... CUR", one per line. */
static char *complete(const char *words, const char *cur)
{
    char command[1024];
    int n = snprintf(command, sizeof command,
                     "bash -c 'source \"%s/tools/tapegrad.bash\" && COMP_WORDS=(tapegrad %s \"%s\") && "
                     "COMP_CWORD=$((${#COMP_WORDS[@]} - 1)) && _tapegrad && printf \"%%s\\n\" \"${COMPREPLY[@]}\"'",
                     SRC, words, cur);
    cr_assert(n > 0 && (size_t)n < sizeof command);
    return capture(command);
}

static bool has_line(const char *text, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = text; (p = strstr(p, word)); p += n)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == 0))
            return true;
    return false;
}

Test(cli_docs, bash_completion_offers_every_command_and_its_options)
{
    char names[16][64], options[64][64];
    int n = commands(names, 16);
    char *offered = complete("", "");
    for (int c = 0; c < n; c++)
        cr_expect(has_line(offered, names[c]), "completion does not offer %s:\n%s", names[c], offered);
    free(offered);
    offered = complete("", "tr");
    cr_expect_str_eq(offered, "train\n");
    free(offered);
    for (int c = 0; c < n; c++) {
        char *help = command_help(names[c]);
        int m = long_options(help, options, 64);
        offered = complete(names[c], "--");
        for (int k = 0; k < m; k++)
            cr_expect(has_line(offered, options[k]), "completion of tapegrad %s -- does not offer %s:\n%s", names[c],
                      options[k], offered);
        free(offered);
        free(help);
    }
    offered = complete("train", "--pl");
    cr_expect_str_eq(offered, "--plot\n");
    free(offered);
}

Test(cli_docs, train_json_has_a_plot_key_null_without_plot)
{
    char command[1024];
    snprintf(command, sizeof command,
             "d=$(mktemp -d) && cd \"$d\" && '%s' train '%s/examples/iris.json' --out m.safetensors --json "
             "2>/dev/null; s=$?; rm -rf \"$d\"; exit $s",
             TAPEGRAD_CLI, SRC);
    char *out = capture(command);
    cJSON *root = cJSON_Parse(out);
    cr_assert_not_null(root, "not JSON: %s", out);
    static const char *keys[] = { "epochs", "stopped_early", "test", "model", "plot" }; /* docs/cli.md's list */
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        cr_expect(cJSON_HasObjectItem(root, keys[k]), "train --json has no %s", keys[k]);
    cr_expect(cJSON_IsNull(cJSON_GetObjectItem(root, "plot")), "plot is not null without --plot");
    cJSON_Delete(root);
    free(out);
}
