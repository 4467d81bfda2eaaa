// The process's statement shapes: shape key (statement_shape.hpp) -> statement id, read without a
// lock by every recording thread, written under the runtime's interning lock.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>

namespace plugmon::detail {

/// Open addressing with linear probing; entries are never removed (a shape's id never changes).
/// Bounded: it stops taking shapes at 3/4 full, and a key that finds no free slot within
/// `max_probe` slots is not kept; such shapes take the interning lock on each cache miss.
/// find(): wait-free, any thread. insert(): one writer at a time (the caller's lock).
class shape_table {
public:
    /// `slots` is rounded up to a power of two, at least 64. An allocation failure leaves a table
    /// that finds nothing and keeps nothing.
    explicit shape_table(std::size_t slots) noexcept {
        std::size_t n = 64;
        while (n < slots) n <<= 1;
        slots_.reset(new (std::nothrow) slot[n]);
        mask_ = slots_ ? n - 1 : 0;
    }

    /// The id kept for `key`; false when the key is not in the table.
    bool find(std::uint64_t key, std::uint32_t& id) const noexcept {
        if (!slots_) return false;
        for (std::size_t i = 0; i < max_probe; ++i) {
            const slot& s = slots_[(key + i) & mask_];
            // acquire: pairs with insert()'s key.store(release), which follows its id store.
            const std::uint64_t k = s.key.load(std::memory_order_acquire);
            if (k == key) {
                id = s.id.load(std::memory_order_relaxed);
                return true;
            }
            if (k == 0) return false;
        }
        return false;
    }

    /// Keeps key -> id (key != 0) unless the table is too full. Callers serialise inserts.
    void insert(std::uint64_t key, std::uint32_t id) noexcept {
        if (!slots_ || used_ >= (mask_ + 1) / 4 * 3) return;
        for (std::size_t i = 0; i < max_probe; ++i) {
            slot& s = slots_[(key + i) & mask_];
            const std::uint64_t k = s.key.load(std::memory_order_relaxed);
            if (k == key) return;
            if (k != 0) continue;
            s.id.store(id, std::memory_order_relaxed);
            // release: pairs with find()'s key.load(acquire): a reader that sees the key sees id.
            s.key.store(key, std::memory_order_release);
            ++used_;
            return;
        }
    }

    /// Shapes kept (the writer's view; callers hold the lock).
    std::size_t size() const noexcept { return used_; }

    static constexpr std::size_t max_probe = 32;

private:
    struct slot {
        std::atomic<std::uint64_t> key{0};
        std::atomic<std::uint32_t> id{0};
    };
    std::unique_ptr<slot[]> slots_;
    std::size_t mask_ = 0;
    std::size_t used_ = 0;  // guarded by the caller's lock
};

}  // namespace plugmon::detail
