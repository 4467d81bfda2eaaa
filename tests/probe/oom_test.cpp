// The probe under allocation failure: with every global operator new failing on the recording
// thread (throwing std::bad_alloc or returning nullptr), the first probe calls of a process and of
// a new thread return normally, and their events are counted as dropped, never thrown, never
// aborting the process.
#include <plugmon/probe.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <new>
#include <thread>

namespace {

// Per thread, so that only the thread under test fails (and never gtest or the probe's helper
// thread). Constant-initialised thread_locals: reading them from operator new allocates nothing.
thread_local bool fail_allocations = false;
thread_local unsigned failed_allocations = 0;

void* allocate(std::size_t n) noexcept {
    if (fail_allocations) {
        ++failed_allocations;
        return nullptr;
    }
    return std::malloc(n != 0 ? n : 1);
}

void* allocate(std::size_t n, std::align_val_t align) noexcept {
    if (fail_allocations) {
        ++failed_allocations;
        return nullptr;
    }
    void* p = nullptr;
    const std::size_t a = std::max(static_cast<std::size_t>(align), sizeof(void*));
    return ::posix_memalign(&p, a, n != 0 ? n : 1) == 0 ? p : nullptr;
}

// Out of line, so that GCC does not see operator new's result reach free() and warn
// (-Wmismatched-new-delete): here they are a matched pair by construction.
[[gnu::noinline]] void release(void* p) noexcept { std::free(p); }

template <class... A>
void* allocate_or_throw(A... args) {
    if (void* p = allocate(args...)) return p;
    throw std::bad_alloc();
}

}  // namespace

// Every replaceable allocation function. With the flag clear they forward to malloc and free, so a
// sanitizer's allocator still sees every block (and matches each free with its malloc).
void* operator new(std::size_t n) { return allocate_or_throw(n); }
void* operator new[](std::size_t n) { return allocate_or_throw(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return allocate(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return allocate(n); }
void* operator new(std::size_t n, std::align_val_t a) { return allocate_or_throw(n, a); }
void* operator new[](std::size_t n, std::align_val_t a) { return allocate_or_throw(n, a); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return allocate(n, a);
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return allocate(n, a);
}
void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t) noexcept { release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete(void* p, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { release(p); }

using namespace std::chrono_literals;

// Each test runs in a process of its own (ctest runs one test per process), so "first use" is
// the first probe call of the process.
TEST(oom, first_probe_calls_of_the_process_drop_and_count_instead_of_terminating) {
    fail_allocations = true;
    const plugmon::Plugin p{"oom_plugin"};  // the runtime cannot be built: the name folds
    {
        auto q = p.query("select", "accounts");
        q.rows(1);
        q.statement("SELECT 1");
    }
    p.count("event");
    { auto e = p.execution(); }
    {
        const plugmon::TenantScope t("tenant");
        p.count("in_tenant");
    }
    p.record_query("insert", "accounts", 5ms);
    const plugmon::Statement st("SELECT * FROM t WHERE id = 1");
    const plugmon::ProbeStats during = plugmon::probe_stats();
    const bool flushed = plugmon::flush_to_agent(10ms);
    const unsigned failures = failed_allocations;
    fail_allocations = false;

    EXPECT_GT(failures, 0u) << "the replaced operator new was never called";
    EXPECT_EQ(p.id(), plugmon::layout::name_overflow);
    EXPECT_EQ(st.id(), 0u);
    EXPECT_FALSE(flushed);
    EXPECT_FALSE(during.attached);
    EXPECT_EQ(during.events_written, 0u);
    EXPECT_EQ(during.events_dropped, 5u) << "query, count, execution, count, record_query";

    // Memory is back: the runtime is built now and keeps the drops; recording works again.
    const plugmon::ProbeStats after = plugmon::probe_stats();
    EXPECT_EQ(after.events_dropped, 5u);
    EXPECT_EQ(after.events_written, 0u);
    const plugmon::Plugin q{"oom_recovered"};
    EXPECT_GE(q.id(), plugmon::layout::first_name_id);
    q.count("event");
    { auto s = q.query("select", "accounts"); }
    const plugmon::ProbeStats last = plugmon::probe_stats();
    EXPECT_EQ(last.events_written, 2u);
    EXPECT_EQ(last.events_dropped, 5u);
}

TEST(oom, a_new_thread_without_memory_for_its_writer_drops_and_counts) {
    const plugmon::Plugin p{"oom_thread"};
    const plugmon::ProbeStats before = plugmon::probe_stats();  // other tests of this process
    unsigned failures = 0;
    std::uint32_t late_id = ~0u;
    std::thread t([&] {
        fail_allocations = true;
        p.count("a");  // the segment is created, but neither the helper thread nor the writer
        { auto q = p.query("select", "accounts"); }
        { auto e = p.execution(); }
        const plugmon::Plugin late{"oom_late"};  // interning needs memory: folds
        late_id = late.id();
        failures = failed_allocations;
        fail_allocations = false;
        p.count("b");  // memory is back: this thread gets its lane
    });
    t.join();
    EXPECT_GT(failures, 0u) << "the replaced operator new was never called";
    EXPECT_EQ(late_id, plugmon::layout::name_overflow);
    const plugmon::ProbeStats s = plugmon::probe_stats();
    EXPECT_EQ(s.events_dropped - before.events_dropped, 3u);
    EXPECT_EQ(s.events_written - before.events_written, 1u);
}
