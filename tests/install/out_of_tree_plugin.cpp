// A plugin outside the plugmon tree: records through every probe entry point with no agent
// running and checks that the probe accounts for each event (written + dropped = recorded).
#include <plugmon/probe.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <thread>

namespace {

constexpr int rounds = 200;

// Records a fixed mix of events and returns how many it recorded.
std::uint64_t record_workload(const plugmon::Plugin& plugin) {
    std::uint64_t recorded = 0;
    for (int i = 0; i < rounds; ++i) {
        {
            auto q = plugin.query("SELECT", "invoices");
            q.rows(std::uint64_t(i));
        }
        ++recorded;
        {
            PLUGMON_QUERY(q2, plugin, "UPDATE", "invoices");
            if (i % 10 == 0) q2.fail();
        }
        ++recorded;
    }
    plugin.record_query("DELETE", "sessions", std::chrono::nanoseconds{1200}, 3, false);
    ++recorded;
    { auto run = plugin.execution(); }
    ++recorded;
    plugin.count("rate_limited");
    ++recorded;
    plugin.pool(3, 7, 0);
    ++recorded;
    return recorded;
}

}  // namespace

int main() {
    const plugmon::ProbeStats before = plugmon::probe_stats();
    const plugmon::Plugin billing{"install_test"};

    std::uint64_t recorded = 0;
    {
        plugmon::TenantScope tenant{"acme"};
        recorded += record_workload(billing);
    }
    std::uint64_t recorded_by_thread = 0;
    std::thread other([&] {
        plugmon::TenantScope tenant{"globex"};
        recorded_by_thread = record_workload(billing);
    });
    other.join();
    recorded += recorded_by_thread;

    const plugmon::ProbeStats after = plugmon::probe_stats();
    const std::uint64_t accounted = (after.events_written - before.events_written) +
                                    (after.events_dropped - before.events_dropped);
    std::printf("out_of_tree_plugin: recorded=%llu written=%llu dropped=%llu attached=%d\n",
                static_cast<unsigned long long>(recorded),
                static_cast<unsigned long long>(after.events_written),
                static_cast<unsigned long long>(after.events_dropped), int(after.attached));

    int status = 0;
    if (accounted != recorded) {
        std::fprintf(stderr, "FAIL: written + dropped = %llu, recorded %llu\n",
                     static_cast<unsigned long long>(accounted),
                     static_cast<unsigned long long>(recorded));
        status = 1;
    }
    // No agent is running: the probe must still record into its own segment.
    if (after.events_written - before.events_written == 0) {
        std::fprintf(stderr, "FAIL: nothing was written without an agent\n");
        status = 1;
    }
    if (after.attached) {
        std::fprintf(stderr, "FAIL: attached reported with no agent in PLUGMON_RUNTIME_DIR\n");
        status = 1;
    }
    return status;
}
