// Opt-in allocation accounting (CMake target plugmon::alloc, libplugmon_alloc): replaces the global
// operator new and delete so that heap bytes are charged to the plugin whose execution() scope is
// running on the allocating thread (plugmon::detail::tls_plugin).
//
// What is counted: every C++ operator new / operator delete in the process (plain, array, nothrow,
// sized, aligned), whoever calls it: plugin code, the standard library on its behalf, the host.
// Not counted: malloc/calloc/realloc/free called directly (C code, C libraries, the C++ runtime's
// exception objects). The amount charged is the size requested from operator new, not including
// the header below or malloc's own rounding. An allocation made outside any execution() scope is
// charged to nobody, and so is its free, wherever it happens.
//
// The opt-in is linking the library. The replacement takes effect only when the dynamic linker
// finds these definitions before libstdc++'s, which is the case when the executable links
// plugmon::alloc itself (the compiler driver puts libstdc++ last) or when it is LD_PRELOADed.
// Loaded any later (a plugin dlopen()ed by a host that already runs C++), or under ASan or TSan
// (whose runtimes come first in the lookup order and replace operator new themselves), the
// library's definitions are never called: nothing is counted, and nothing breaks.
//
// Header: each block carries 16 bytes before the pointer handed out, recording the requested size,
// the plugin charged and a check word, so that a free made later, on another thread or outside any
// scope credits the plugin that allocated. Aligned allocations (std::align_val_t) also store the
// offset back to the malloc()ed block, and over-allocate by the alignment plus 24 bytes:
//
//   plain:    block                           user (block + 16, 16-aligned as malloc's block is)
//             | size:8 | plugin:4 | check:4 | bytes ...
//   aligned:  block        user - 24   user - 16                          user (aligned)
//             | padding... | offset:8 | size:8 | plugin:4 | check:4 | bytes ...
//
// The check word mixes the user address, size, plugin and offset with the kind of allocation
// (plain, array, aligned, aligned array). A delete whose pointer carries no valid check word is
// treated as a block from some other operator new and handed to free() as it is; a mismatch of
// kind (new[] released with delete, aligned with unaligned) or of size (sized delete) is still
// released correctly. Debug builds (no NDEBUG) report any of these on stderr and abort.
//
// Thread safety: every operator may be called from any thread concurrently; the only shared state
// is the probe's per-plugin totals (lock-free atomic adds in plugmon::detail::alloc_account).
// Cost per call beyond malloc/free: one TLS load, a few multiplications and, inside a scope, one
// alloc_account call. Nothing here allocates through operator new or takes a lock, so there is no
// recursion. operator new throws std::bad_alloc after the new-handler loop the standard asks for;
// the nothrow forms return nullptr; delete never throws.
#include <plugmon/probe.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <new>

#include <unistd.h>

namespace {

struct header {
    std::uint64_t size;    // bytes requested (what is charged)
    std::uint32_t plugin;  // plugin charged; 0: nobody
    std::uint32_t check;   // mix(user, size, plugin, offset) ^ kind
};
constexpr std::size_t header_size = sizeof(header);
constexpr std::size_t offset_size = sizeof(std::uint64_t);
constexpr std::size_t aligned_prefix = header_size + offset_size;
static_assert(header_size == 16, "the header keeps the default new alignment");
static_assert(header_size % __STDCPP_DEFAULT_NEW_ALIGNMENT__ == 0);
// malloc returns blocks aligned for max_align_t; block + 16 then keeps the default new alignment.
static_assert(alignof(std::max_align_t) >= __STDCPP_DEFAULT_NEW_ALIGNMENT__);

enum class kind : std::uint32_t {
    plain = 0x5c7a11e1u,
    array = 0x3e9b04d7u,
    aligned = 0xa6d2f35bu,
    aligned_array = 0x71c8e92fu,
};

constexpr bool is_aligned_kind(kind k) noexcept {
    return k == kind::aligned || k == kind::aligned_array;
}

#ifdef NDEBUG
constexpr bool report_misuse = false;
#else
constexpr bool report_misuse = true;
#endif

// A debug-build report: write(2) and abort, since anything that allocates could recurse here.
[[noreturn]] void misuse(const char* what) noexcept {
    static constexpr char prefix[] = "plugmon alloc: ";
    ssize_t r = ::write(STDERR_FILENO, prefix, sizeof prefix - 1);
    r = ::write(STDERR_FILENO, what, std::strlen(what));
    r = ::write(STDERR_FILENO, "\n", 1);
    static_cast<void>(r);
    std::abort();
}

std::uint32_t mix(const char* user, const header& h, std::uint64_t offset) noexcept {
    std::uint64_t x = reinterpret_cast<std::uintptr_t>(user);
    x ^= h.size * plugmon::layout::fibonacci_multiplier;
    x ^= (std::uint64_t(h.plugin) << 32) ^ (offset << 8);
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 29;
    return std::uint32_t(x >> 32);
}

// Stamps the header(s) in front of `user` and charges the plugin running on this thread.
void* finish(char* block, char* user, std::size_t size, kind k) noexcept {
    const std::uint64_t offset = std::uint64_t(user - block);
    header h{size, plugmon::detail::tls_plugin, 0};
    h.check = mix(user, h, offset) ^ std::uint32_t(k);
    std::memcpy(user - header_size, &h, sizeof h);
    if (is_aligned_kind(k)) std::memcpy(user - aligned_prefix, &offset, sizeof offset);
    if (h.plugin != 0) plugmon::detail::alloc_account(h.plugin, size, 0);
    return user;
}

// One attempt; nullptr when malloc fails or the size cannot be represented with the header.
void* try_plain(std::size_t size, kind k) noexcept {
    if (size > SIZE_MAX - header_size) return nullptr;
    char* block = static_cast<char*>(std::malloc(size + header_size));
    if (block == nullptr) return nullptr;
    return finish(block, block + header_size, size, k);
}

// `align` is a power of two. Over-allocates so that an aligned address with 24 bytes before it
// lies inside the block whatever malloc's own alignment.
void* try_aligned(std::size_t size, std::size_t align, kind k) noexcept {
    if (align < header_size) align = header_size;
    if (size > SIZE_MAX - aligned_prefix - align) return nullptr;
    char* block = static_cast<char*>(std::malloc(size + aligned_prefix + align));
    if (block == nullptr) return nullptr;
    const std::uintptr_t at = reinterpret_cast<std::uintptr_t>(block) + aligned_prefix;
    const std::uintptr_t skip = ((at + (align - 1)) & ~std::uintptr_t(align - 1)) - at;
    return finish(block, block + aligned_prefix + skip, size, k);
}

bool valid_alignment(std::size_t align) noexcept {
    return align != 0 && (align & (align - 1)) == 0;
}

// The throwing forms: retry through the new-handler until it gives up ([new.delete.single]).
void* allocate(std::size_t size, std::size_t align, kind k) {
    if (is_aligned_kind(k) && !valid_alignment(align)) throw std::bad_alloc();
    for (;;) {
        void* p = is_aligned_kind(k) ? try_aligned(size, align, k) : try_plain(size, k);
        if (p != nullptr) return p;
        const std::new_handler handler = std::get_new_handler();
        if (handler == nullptr) throw std::bad_alloc();
        handler();
    }
}

// The nothrow forms behave as the throwing ones inside a try block ([new.delete.single]).
void* allocate_nothrow(std::size_t size, std::size_t align, kind k) noexcept {
    try {
        return allocate(size, align, k);
    } catch (const std::bad_alloc&) {
        return nullptr;
    }
}

// Reads the header and checks it as `k`'s layout; on success sets `block`.
bool matches(char* user, const header& h, kind k, char*& block) noexcept {
    std::uint64_t offset = header_size;
    if (is_aligned_kind(k)) {
        std::memcpy(&offset, user - aligned_prefix, sizeof offset);
        if (offset < aligned_prefix || offset > reinterpret_cast<std::uintptr_t>(user))
            return false;
    }
    if ((h.check ^ mix(user, h, offset)) != std::uint32_t(k)) return false;
    block = user - offset;
    return true;
}

// `expected` is the kind the delete form implies; `sized` the size a sized delete passed (or 0 with
// `has_size` false). The expected layout is tried first so that a well-matched delete only reads
// bytes inside its own block.
void release(void* ptr, kind expected, bool has_size, std::size_t sized) noexcept {
    if (ptr == nullptr) return;
    char* const user = static_cast<char*>(ptr);
    header h;
    std::memcpy(&h, user - header_size, sizeof h);
    char* block = nullptr;
    kind found = expected;
    if (!matches(user, h, expected, block)) {
        bool known = false;
        for (kind k : {kind::plain, kind::array, kind::aligned, kind::aligned_array}) {
            if (k != expected && matches(user, h, k, block)) {
                found = k;
                known = true;
                break;
            }
        }
        if (!known) {
            if (report_misuse)
                misuse(
                    "operator delete of a pointer not from this operator new (or a corrupted "
                    "header)");
            std::free(ptr);  // most likely another operator new's block: malloc()ed as it is
            return;
        }
    }
    if (report_misuse && found != expected)
        misuse("mismatched operator delete (array/non-array or aligned/unaligned)");
    if (report_misuse && has_size && sized != h.size)
        misuse("sized operator delete with a size other than allocated");
    if (h.plugin != 0) plugmon::detail::alloc_account(h.plugin, 0, h.size);
    // A second delete of the same pointer then finds no valid check word (debug: reported).
    const std::uint32_t cleared = 0;
    std::memcpy(user - sizeof cleared, &cleared, sizeof cleared);
    std::free(block);
}

std::size_t to_size(std::align_val_t align) noexcept { return static_cast<std::size_t>(align); }

}  // namespace

// The replaceable global allocation functions ([new.delete]); all twenty, so that no default from
// libstdc++ ever sees a headered pointer.

void* operator new(std::size_t size) { return allocate(size, 0, kind::plain); }
void* operator new[](std::size_t size) { return allocate(size, 0, kind::array); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
    return allocate_nothrow(size, 0, kind::plain);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
    return allocate_nothrow(size, 0, kind::array);
}
void* operator new(std::size_t size, std::align_val_t align) {
    return allocate(size, to_size(align), kind::aligned);
}
void* operator new[](std::size_t size, std::align_val_t align) {
    return allocate(size, to_size(align), kind::aligned_array);
}
void* operator new(std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
    return allocate_nothrow(size, to_size(align), kind::aligned);
}
void* operator new[](std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
    return allocate_nothrow(size, to_size(align), kind::aligned_array);
}

void operator delete(void* ptr) noexcept { release(ptr, kind::plain, false, 0); }
void operator delete[](void* ptr) noexcept { release(ptr, kind::array, false, 0); }
void operator delete(void* ptr, std::size_t size) noexcept {
    release(ptr, kind::plain, true, size);
}
void operator delete[](void* ptr, std::size_t size) noexcept {
    release(ptr, kind::array, true, size);
}
void operator delete(void* ptr, const std::nothrow_t&) noexcept {
    release(ptr, kind::plain, false, 0);
}
void operator delete[](void* ptr, const std::nothrow_t&) noexcept {
    release(ptr, kind::array, false, 0);
}
void operator delete(void* ptr, std::align_val_t) noexcept {
    release(ptr, kind::aligned, false, 0);
}
void operator delete[](void* ptr, std::align_val_t) noexcept {
    release(ptr, kind::aligned_array, false, 0);
}
void operator delete(void* ptr, std::size_t size, std::align_val_t) noexcept {
    release(ptr, kind::aligned, true, size);
}
void operator delete[](void* ptr, std::size_t size, std::align_val_t) noexcept {
    release(ptr, kind::aligned_array, true, size);
}
void operator delete(void* ptr, std::align_val_t, const std::nothrow_t&) noexcept {
    release(ptr, kind::aligned, false, 0);
}
void operator delete[](void* ptr, std::align_val_t, const std::nothrow_t&) noexcept {
    release(ptr, kind::aligned_array, false, 0);
}
