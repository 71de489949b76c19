/* evmap command line: dispatches to subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char main_help[] =
    "usage: evmap COMMAND [options]\n"
    "\n"
    "evmap explains the decisions of convolutional image classifiers (ONNX models).\n"
    "\n"
    "commands:\n"
    "  classify      class probabilities of images\n"
    "  explain       evidence maps (Prediction Difference Analysis)\n"
    "  fit-sampler   fit PDA's conditional sampler once, for reuse\n"
    "  evaluate      judge evidence-map methods: deletion, insertion, AOPC,\n"
    "                max-sensitivity, time\n"
    "  index         merge the index parts of sharded or resumed explain runs\n"
    "  report        one HTML page with a run's maps, table and evaluation\n"
    "\n"
    "Run 'evmap COMMAND --help' for a command's options.\n"
    "Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input,\n"
    "130 interrupted (Ctrl-C; no partial output is left).\n";

int main(int argc, char **argv) {
    cli_tune_blas(argv);
    if (argc < 2) {
        fputs(main_help, stderr);
        return EXIT_USAGE;
    }
    const char *command = argv[1];
    if (!strcmp(command, "--help") || !strcmp(command, "-h") || !strcmp(command, "help")) {
        fputs(main_help, stdout);
        return EXIT_OK;
    }
    if (!strcmp(command, "classify"))
        return cmd_classify(argc - 1, argv + 1);
    if (!strcmp(command, "explain"))
        return cmd_explain(argc - 1, argv + 1);
    if (!strcmp(command, "fit-sampler"))
        return cmd_fit_sampler(argc - 1, argv + 1);
    if (!strcmp(command, "evaluate"))
        return cmd_evaluate(argc - 1, argv + 1);
    if (!strcmp(command, "index"))
        return cmd_index(argc - 1, argv + 1);
    if (!strcmp(command, "report"))
        return cmd_report(argc - 1, argv + 1);
    fprintf(stderr, "evmap: unknown command '%s' (see 'evmap --help')\n", command);
    return EXIT_USAGE;
}
