// Sets the probe's environment for a test executable before main() (and so before the probe's
// first use), from the PLUGMON_TEST_ENV compile definition: "KEY=VALUE|KEY=VALUE". Variables
// already set in the real environment win, so a run can still be reconfigured by hand.
#include <cstdlib>
#include <string>

namespace {
struct test_env {
    test_env() {
        const std::string all = PLUGMON_TEST_ENV;
        std::size_t pos = 0;
        while (pos <= all.size()) {
            const std::size_t end = std::min(all.find('|', pos), all.size());
            const std::string kv = all.substr(pos, end - pos);
            if (const auto eq = kv.find('='); eq != std::string::npos)
                ::setenv(kv.substr(0, eq).c_str(), kv.substr(eq + 1).c_str(), 0);
            pos = end + 1;
        }
    }
};
// Runs before ordinary static constructors, so before any global plugmon::Name or Plugin.
const test_env set_before_main __attribute__((init_priority(101)));
}  // namespace
