// plugmon-agent: drains the probes' shared-memory rings, aggregates, exports. See app/app.hpp.
#include "app/app.hpp"

int main(int argc, char** argv) { return plugmon::agent::run_agent(argc, argv); }
