// The agent's wiring: builds the stages in data-flow order from a config, runs the I/O loop,
// reloads on SIGHUP, and shuts down in order on SIGTERM/SIGINT.
#pragma once

namespace plugmon::agent {

/// plugmon-agent's whole life: parses the command line, runs the subcommand (the daemon or
/// `migrate`), and returns the exit status (0 done, 1 runtime failure, 2 bad configuration).
int run_agent(int argc, char** argv);

}  // namespace plugmon::agent
