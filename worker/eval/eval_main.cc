// vicreg_eval: see worker/eval/commands.h.
#include "worker/eval/commands.h"

int main(int argc, char** argv) { return vicreg::eval::EvalMain(argc, argv); }
