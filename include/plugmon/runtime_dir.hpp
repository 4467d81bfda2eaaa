// The one rule for the directory that holds agent.sock, shared by the probe and the agent.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <string>

#include <fcntl.h>
#include <sys/types.h>
#include <unistd.h>

/// The rule, in order; the first that applies wins:
///
///  1. `$PLUGMON_RUNTIME_DIR`, when set and not empty;
///  2. `/run/plugmon` when the effective user is root (the agent creates it), or when it exists
///     and the effective user may create files in it (write and search permission, checked with
///     faccessat(AT_EACCESS): the directory of a system agent, shared with a group);
///  3. `$XDG_RUNTIME_DIR/plugmon`, when XDG_RUNTIME_DIR is set and not empty;
///  4. `/tmp/plugmon-<euid>`.
///
/// It depends only on the effective uid, the environment and /run/plugmon, so an agent and a
/// plugin started by the same user in the same environment always pick the same directory. A
/// probe that finds no agent in the rule's directory (and has no PLUGMON_RUNTIME_DIR) also tries
/// /run/plugmon/agent.sock, so a plugin of any user reaches a system agent whose socket it may
/// connect to (socket_mode) without being able to write to /run/plugmon.
namespace plugmon {

/// The system agent's directory (systemd RuntimeDirectory=plugmon).
inline constexpr char system_runtime_dir[] = "/run/plugmon";

namespace detail {

/// A chosen runtime directory: `base`, then `suffix`, then the decimal `euid` when `add_euid`.
struct runtime_dir_choice {
    const char* base;
    const char* suffix;
    bool add_euid;
    unsigned long euid;
};

/// The rule above with the system directory as a parameter (tests name a directory of their
/// own; everything else calls runtime_dir(), which passes system_runtime_dir). Thread-safe as far
/// as getenv() is (no concurrent setenv); one faccessat() call, never blocks otherwise; no
/// allocation; never throws. The strings point into the environment or into `system_dir`.
inline runtime_dir_choice choose_runtime_dir(const char* system_dir) noexcept {
    const unsigned long euid = static_cast<unsigned long>(::geteuid());
    if (const char* d = std::getenv("PLUGMON_RUNTIME_DIR"); d != nullptr && *d != '\0')
        return {d, "", false, euid};
    if (euid == 0 || ::faccessat(AT_FDCWD, system_dir, W_OK | X_OK, AT_EACCESS) == 0)
        return {system_dir, "", false, euid};
    if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x != nullptr && *x != '\0')
        return {x, "/plugmon", false, euid};
    return {"/tmp/plugmon-", "", true, euid};
}

/// Appends `text` to buf[0, n) within `cap` bytes (the last kept for the NUL); false if it does
/// not fit. No allocation; never throws.
inline bool append_text(char* buf, std::size_t cap, std::size_t& n, const char* text) noexcept {
    for (; *text != '\0'; ++text) {
        if (n + 1 >= cap) return false;
        buf[n++] = *text;
    }
    return true;
}

/// Writes `c` into buf (NUL-terminated); returns its length, or 0 when it does not fit in `cap`.
/// No allocation; never throws.
inline std::size_t format_runtime_dir(const runtime_dir_choice& c, char* buf,
                                      std::size_t cap) noexcept {
    std::size_t n = 0;
    if (cap == 0 || !append_text(buf, cap, n, c.base) || !append_text(buf, cap, n, c.suffix))
        return 0;
    if (c.add_euid) {
        char digits[24];
        std::size_t k = sizeof digits;
        digits[--k] = '\0';
        unsigned long v = c.euid;
        do digits[--k] = static_cast<char>('0' + v % 10);
        while ((v /= 10) != 0);
        if (!append_text(buf, cap, n, digits + k)) return 0;
    }
    buf[n] = '\0';
    return n;
}

/// The rule as a string, with the system directory as a parameter (see choose_runtime_dir).
/// Allocates; throws std::bad_alloc.
inline std::string runtime_dir_string(const char* system_dir) {
    const runtime_dir_choice c = choose_runtime_dir(system_dir);
    std::string dir = std::string(c.base) + c.suffix;
    if (c.add_euid) dir += std::to_string(c.euid);
    return dir;
}

}  // namespace detail

/// The runtime directory by the rule above, into buf (NUL-terminated). Returns its length, or 0
/// when it does not fit in `cap` bytes. For the probe: thread-safe as far as getenv() is, one
/// faccessat() system call, no allocation, never throws.
inline std::size_t runtime_dir(char* buf, std::size_t cap) noexcept {
    return detail::format_runtime_dir(detail::choose_runtime_dir(system_runtime_dir), buf, cap);
}

/// The runtime directory by the rule above, as a string (the agent's default runtime_dir).
/// Thread-safe as far as getenv() is, one faccessat() system call; allocates, throws
/// std::bad_alloc.
inline std::string runtime_dir() { return detail::runtime_dir_string(system_runtime_dir); }

}  // namespace plugmon
