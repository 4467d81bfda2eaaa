// sd_notify without libsystemd: the service manager's notification protocol (one datagram of
// newline-separated KEY=VALUE lines to $NOTIFY_SOCKET), and the messages the agent sends.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <sys/socket.h>
#include <sys/un.h>

namespace plugmon::agent::systemd {

/// Where notifications go: a datagram socket named by $NOTIFY_SOCKET. An absolute path is a
/// socket in the filesystem; a leading '@' names a socket in the abstract namespace (Linux).
/// A default-constructed notifier, or one made from an unset $NOTIFY_SOCKET, sends nothing.
/// Thread safety: send() may be called from any thread (one sendto per message).
class notifier {
public:
    notifier() = default;
    /// Throws std::invalid_argument naming NOTIFY_SOCKET and the problem when `address` is not
    /// an absolute path or an '@' name, or is too long for a Unix socket address.
    explicit notifier(std::string address);
    ~notifier();
    notifier(const notifier&) = delete;  // and not movable: the watchdog holds a reference
    notifier& operator=(const notifier&) = delete;

    /// From $NOTIFY_SOCKET: disabled when it is unset or empty; an unusable value is logged once
    /// and disables it (the service manager then sees no notification, never a crash).
    static notifier from_env();

    bool enabled() const { return fd_ >= 0; }
    const std::string& address() const { return address_; }
    /// Sends `message` as one datagram. Returns false (and keeps why in `error`) when it could
    /// not be sent; true when sent or when the notifier is disabled. Never throws, never blocks.
    bool send(std::string_view message, std::string* error = nullptr) const;

private:
    std::string address_;
    sockaddr_un addr_{};  ///< address_ encoded once, in the constructor: every send reuses it
    socklen_t addr_len_ = 0;
    int fd_ = -1;
};

/// `READY=1` with a one-line `STATUS=` (line breaks become spaces).
std::string ready_message(std::string_view status);
/// `RELOADING=1` with `MONOTONIC_USEC=` (CLOCK_MONOTONIC, as systemd asks for it).
std::string reloading_message(std::uint64_t monotonic_usec);
/// `STOPPING=1` with a one-line `STATUS=`.
std::string stopping_message(std::string_view status);
/// `WATCHDOG=1`.
std::string watchdog_message();
/// CLOCK_MONOTONIC now, in microseconds.
std::uint64_t monotonic_usec();

}  // namespace plugmon::agent::systemd
