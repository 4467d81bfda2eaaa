// Allocation accounting (plugmon::alloc) without an agent: operator new inside a plugin's
// execution() scope is charged to that plugin at exactly the requested size, and every delete,
// wherever it runs, credits the plugin that allocated.
#include <plugmon/probe.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

namespace {

struct totals {
    std::uint64_t allocated = 0;
    std::uint64_t freed = 0;
};

totals totals_of(const plugmon::Plugin& p) {
    totals t;
    EXPECT_TRUE(plugmon::detail::alloc_totals(p.id(), t.allocated, t.freed));
    return t;
}

// Stores a pointer where the optimiser must assume it is read, so that no new/delete pair in
// these tests can be elided (new-expressions may be, since C++14).
void* volatile sink = nullptr;
template <class T>
T* escape(T* p) {
    sink = p;
    return static_cast<T*>(sink);
}

// A size no allocation can have: size + header overflows, so malloc is never even asked.
volatile std::size_t impossible_size = SIZE_MAX - 4;

struct alignas(64) cache_line {
    unsigned char bytes[64];
};

bool aligned_to(const void* p, std::size_t align) {
    return reinterpret_cast<std::uintptr_t>(p) % align == 0;
}

TEST(alloc, new_inside_a_scope_is_charged_to_the_plugin_at_the_requested_size) {
    const plugmon::Plugin p{"alloc_scope"};
    const totals before = totals_of(p);
    char* bytes = nullptr;
    std::uint32_t running = 0;
    {
        auto scope = p.execution();
        running = plugmon::detail::tls_plugin;
        bytes = escape(new char[1000]);
    }
    EXPECT_EQ(running, p.id());
    const totals during = totals_of(p);
    EXPECT_EQ(during.allocated - before.allocated, 1000u);
    EXPECT_EQ(during.freed, before.freed);

    delete[] bytes;  // outside any scope: still credited to the plugin that allocated
    const totals after = totals_of(p);
    EXPECT_EQ(after.allocated, during.allocated);
    EXPECT_EQ(after.freed - before.freed, 1000u);
}

TEST(alloc, new_outside_any_scope_is_charged_to_nobody) {
    const plugmon::Plugin p{"alloc_nobody"};
    ASSERT_EQ(plugmon::detail::tls_plugin, 0u);
    const totals before = totals_of(p);
    auto* outside = escape(new std::uint64_t[64]);
    {
        auto scope = p.execution();
        delete[] outside;  // freed inside the plugin's scope, but the plugin never allocated it
    }
    const totals after = totals_of(p);
    EXPECT_EQ(after.allocated, before.allocated);
    EXPECT_EQ(after.freed, before.freed);
}

TEST(alloc, free_on_another_thread_credits_the_allocating_plugin) {
    const plugmon::Plugin owner{"alloc_owner"}, other{"alloc_other"};
    const totals owner_before = totals_of(owner), other_before = totals_of(other);
    int* block = nullptr;
    {
        auto scope = owner.execution();
        block = escape(new int[50]);
    }
    std::thread([&] {
        auto scope = other.execution();
        delete[] block;
    }).join();
    const totals owner_after = totals_of(owner), other_after = totals_of(other);
    EXPECT_EQ(owner_after.allocated - owner_before.allocated, 50 * sizeof(int));
    EXPECT_EQ(owner_after.freed - owner_before.freed, 50 * sizeof(int));
    EXPECT_EQ(other_after.allocated, other_before.allocated);
    EXPECT_EQ(other_after.freed, other_before.freed);
}

TEST(alloc, nested_scopes_charge_the_inner_plugin_and_restore_the_outer) {
    const plugmon::Plugin outer{"alloc_outer"}, inner{"alloc_inner"};
    const totals outer_before = totals_of(outer), inner_before = totals_of(inner);
    void* in_inner = nullptr;
    void* after_inner = nullptr;
    std::uint32_t running_inner = 0, running_after = 0;
    {
        auto outer_scope = outer.execution();
        {
            auto inner_scope = inner.execution();
            running_inner = plugmon::detail::tls_plugin;
            in_inner = escape(::operator new(100));
        }
        running_after = plugmon::detail::tls_plugin;
        after_inner = escape(::operator new(200));
    }
    EXPECT_EQ(running_inner, inner.id());
    EXPECT_EQ(running_after, outer.id());
    EXPECT_EQ(plugmon::detail::tls_plugin, 0u);
    EXPECT_EQ(totals_of(inner).allocated - inner_before.allocated, 100u);
    EXPECT_EQ(totals_of(outer).allocated - outer_before.allocated, 200u);
    ::operator delete(in_inner);
    ::operator delete(after_inner);
    EXPECT_EQ(totals_of(inner).freed - inner_before.freed, 100u);
    EXPECT_EQ(totals_of(outer).freed - outer_before.freed, 200u);
}

TEST(alloc, aligned_new_is_aligned_and_accounted) {
    const plugmon::Plugin p{"alloc_aligned"};
    const totals before = totals_of(p);
    cache_line* line = nullptr;
    cache_line* lines = nullptr;
    void* page = nullptr;
    void* quiet = nullptr;
    {
        auto scope = p.execution();
        line = escape(new cache_line);
        lines = escape(new cache_line[3]);
        page = escape(::operator new(100, std::align_val_t{4096}));
        quiet = escape(::operator new(10, std::align_val_t{256}, std::nothrow));
    }
    EXPECT_TRUE(aligned_to(line, 64));
    EXPECT_TRUE(aligned_to(lines, 64));
    EXPECT_TRUE(aligned_to(page, 4096));
    ASSERT_NE(quiet, nullptr);
    EXPECT_TRUE(aligned_to(quiet, 256));
    const totals during = totals_of(p);
    EXPECT_EQ(during.allocated - before.allocated, 64u + 3 * 64u + 100u + 10u);
    EXPECT_EQ(during.freed, before.freed);

    // The whole user range is writable (ASan checks that it lies inside the malloc()ed block).
    std::memset(page, 0xab, 100);
    delete line;
    delete[] lines;
    ::operator delete(page, std::align_val_t{4096});
    ::operator delete(quiet, std::align_val_t{256}, std::nothrow);
    EXPECT_EQ(totals_of(p).freed - before.freed, 64u + 3 * 64u + 100u + 10u);
}

TEST(alloc, aligned_new_is_aligned_wherever_malloc_puts_the_block) {
    const plugmon::Plugin p{"alloc_aligned_many"};
    const totals before = totals_of(p);
    std::vector<std::pair<void*, std::size_t>> blocks;
    blocks.reserve(200);
    std::uint64_t requested = 0;
    {
        auto scope = p.execution();
        for (std::size_t i = 0; i < 200; ++i) {
            const std::size_t align = std::size_t(1) << (i % 10);  // 1 .. 512, below 16 too
            const std::size_t size = 1 + i * 7 % 97;
            void* q = ::operator new(size, std::align_val_t{align});
            blocks.emplace_back(q, align);  // reserved: no allocation here
            requested += size;
        }
    }
    for (const auto& [q, align] : blocks) EXPECT_TRUE(aligned_to(q, align)) << align;
    EXPECT_EQ(totals_of(p).allocated - before.allocated, requested);
    for (const auto& [q, align] : blocks) ::operator delete(q, std::align_val_t{align});
    EXPECT_EQ(totals_of(p).freed - before.freed, requested);
}

TEST(alloc, plain_new_keeps_the_default_new_alignment) {
    std::vector<void*> blocks;
    for (std::size_t size = 0; size < 100; ++size) blocks.push_back(::operator new(size));
    for (void* q : blocks) EXPECT_TRUE(aligned_to(q, __STDCPP_DEFAULT_NEW_ALIGNMENT__));
    for (void* q : blocks) ::operator delete(q);
}

TEST(alloc, array_and_zero_size_new_are_accounted) {
    const plugmon::Plugin p{"alloc_array"};
    const totals before = totals_of(p);
    std::uint16_t* shorts = nullptr;
    void* empty1 = nullptr;
    void* empty2 = nullptr;
    {
        auto scope = p.execution();
        shorts = escape(new std::uint16_t[321]);
        empty1 = escape(::operator new[](0));
        empty2 = escape(::operator new(0));
    }
    EXPECT_NE(empty1, nullptr);
    EXPECT_NE(empty2, nullptr);
    EXPECT_NE(empty1, empty2);
    EXPECT_EQ(totals_of(p).allocated - before.allocated, 642u);
    delete[] shorts;
    ::operator delete[](empty1);
    ::operator delete(empty2);
    EXPECT_EQ(totals_of(p).freed - before.freed, 642u);
}

TEST(alloc, nothrow_new_is_accounted_and_returns_null_on_failure) {
    const plugmon::Plugin p{"alloc_nothrow"};
    const totals before = totals_of(p);
    char* bytes = nullptr;
    void* failed = reinterpret_cast<void*>(1);
    void* failed_array = reinterpret_cast<void*>(1);
    void* failed_aligned = reinterpret_cast<void*>(1);
    {
        auto scope = p.execution();
        bytes = escape(new (std::nothrow) char[64]);
        failed = ::operator new(impossible_size, std::nothrow);
        failed_array = ::operator new[](impossible_size, std::nothrow);
        failed_aligned = ::operator new(impossible_size, std::align_val_t{64}, std::nothrow);
    }
    ASSERT_NE(bytes, nullptr);
    EXPECT_EQ(failed, nullptr);
    EXPECT_EQ(failed_array, nullptr);
    EXPECT_EQ(failed_aligned, nullptr);
    EXPECT_EQ(totals_of(p).allocated - before.allocated, 64u);  // failures charge nothing
    delete[] bytes;
    EXPECT_EQ(totals_of(p).freed - before.freed, 64u);
}

int handler_calls = 0;
void give_up_after_one_call() {
    ++handler_calls;
    std::set_new_handler(nullptr);
}

TEST(alloc, failing_new_consults_the_new_handler_then_throws_bad_alloc) {
    const plugmon::Plugin p{"alloc_fail"};
    const totals before = totals_of(p);
    handler_calls = 0;
    std::set_new_handler(give_up_after_one_call);
    bool threw = false, threw_aligned = false, threw_bad_alignment = false;
    {
        auto scope = p.execution();
        try {
            sink = ::operator new(impossible_size);
        } catch (const std::bad_alloc&) {
            threw = true;
        }
        try {
            sink = ::operator new[](impossible_size, std::align_val_t{128});
        } catch (const std::bad_alloc&) {
            threw_aligned = true;
        }
        try {
            sink = ::operator new(16, std::align_val_t{3});  // not a power of two
        } catch (const std::bad_alloc&) {
            threw_bad_alignment = true;
        }
    }
    std::set_new_handler(nullptr);
    EXPECT_TRUE(threw);
    EXPECT_TRUE(threw_aligned);
    EXPECT_TRUE(threw_bad_alignment);
    EXPECT_EQ(handler_calls, 1);  // the first failure ran it; it uninstalled itself
    EXPECT_EQ(totals_of(p).allocated, before.allocated);
}

struct shape {
    virtual ~shape() = default;
};
struct big_shape : shape {
    unsigned char payload[200] = {};
};

TEST(alloc, sized_delete_credits_the_allocated_size) {
    const plugmon::Plugin p{"alloc_sized"};
    const totals before = totals_of(p);
    void* raw = nullptr;
    shape* s = nullptr;
    {
        auto scope = p.execution();
        raw = escape(::operator new(48));
        s = escape<shape>(new big_shape);
    }
    EXPECT_EQ(totals_of(p).allocated - before.allocated, 48u + sizeof(big_shape));
    ::operator delete(raw, 48);
    delete s;  // through the base: sized delete with the dynamic type's size
    EXPECT_EQ(totals_of(p).freed - before.freed, 48u + sizeof(big_shape));
}

TEST(alloc, container_growth_inside_a_scope_is_visible) {
    const plugmon::Plugin p{"alloc_containers"};
    const totals before = totals_of(p);
    std::vector<std::uint64_t> numbers;
    std::string text;
    {
        auto scope = p.execution();
        for (std::uint64_t i = 0; i < 1000; ++i) numbers.push_back(i);
        for (int i = 0; i < 300; ++i) text.push_back('x');
    }
    const totals grown = totals_of(p);
    // What is still held is exactly the two buffers; the regrowths allocated more and freed it.
    EXPECT_EQ(grown.allocated - before.allocated - (grown.freed - before.freed),
              numbers.capacity() * sizeof(std::uint64_t) + text.capacity() + 1);
    EXPECT_GT(grown.freed, before.freed);
    std::vector<std::uint64_t>().swap(numbers);
    std::string().swap(text);
    const totals after = totals_of(p);
    EXPECT_EQ(after.allocated - before.allocated, after.freed - before.freed);
}

TEST(alloc, a_leak_shows_as_allocated_minus_freed) {
    const plugmon::Plugin p{"alloc_leak"};
    const totals before = totals_of(p);
    std::vector<char*> kept;
    kept.reserve(10);
    {
        auto scope = p.execution();
        for (int i = 0; i < 10; ++i) {
            kept.push_back(new char[1024]);
            delete[] escape(new char[512]);  // balanced: does not count towards the leak
        }
    }
    const totals leaking = totals_of(p);
    EXPECT_EQ(leaking.allocated - before.allocated, 10 * (1024u + 512u));
    EXPECT_EQ((leaking.allocated - before.allocated) - (leaking.freed - before.freed), 10 * 1024u);
    for (char* c : kept) delete[] c;  // and now it is gone
    const totals after = totals_of(p);
    EXPECT_EQ(after.allocated - before.allocated, after.freed - before.freed);
}

#ifdef NDEBUG
TEST(alloc, mismatched_delete_still_releases_and_credits_in_release_builds) {
    const plugmon::Plugin p{"alloc_mismatch"};
    const totals before = totals_of(p);
    void* array = nullptr;
    void* aligned = nullptr;
    {
        auto scope = p.execution();
        array = escape(::operator new[](40));
        aligned = escape(::operator new(24, std::align_val_t{64}));
    }
    ::operator delete(escape(array));
    ::operator delete(escape(aligned), 7);  // wrong kind and wrong size: the header knows better
    EXPECT_EQ(totals_of(p).freed - before.freed, 40u + 24u);
}
#else
TEST(alloc_death, mismatched_delete_is_reported_in_debug_builds) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");  // the probe's helper thread may be running
    EXPECT_DEATH(::operator delete(escape(::operator new[](40))), "mismatched operator delete");
    EXPECT_DEATH(::operator delete(escape(::operator new(40)), 41), "sized operator delete");
}
#endif

}  // namespace
