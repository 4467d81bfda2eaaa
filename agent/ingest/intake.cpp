// Registration protocol over SOCK_SEQPACKET with SCM_RIGHTS; identity from SO_PEERCRED.
#include "ingest/intake.hpp"
#include "log/log.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace plugmon::agent {

namespace asio = boost::asio;

struct intake::connection {
    explicit connection(asio::io_context& io, int fd) : sock(io, fd), timer(io) {}
    asio::posix::stream_descriptor sock;
    asio::steady_timer timer;
    std::shared_ptr<producer> prod;
};

namespace {

int listen_socket(const std::string& path, unsigned mode) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path)
        throw std::runtime_error("runtime_dir: socket path " + path + " is longer than " +
                                 std::to_string(sizeof addr.sun_path - 1) + " bytes");
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);

    // Another agent listening? Then refuse to start; a stale socket file is replaced.
    if (int probe = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0); probe >= 0) {
        const bool live = ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
        ::close(probe);
        if (live) throw std::runtime_error("another agent is already listening on " + path);
    }
    ::unlink(path.c_str());

    const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::chmod(path.c_str(), mode) != 0 || ::listen(fd, 512) != 0) {
        const int err = errno;
        ::close(fd);
        throw std::runtime_error("listen on " + path + ": " + std::strerror(err));
    }
    return fd;
}

}  // namespace

intake::intake(asio::io_context& io, options opt, drain& d)
    : io_(io), opt_(std::move(opt)), drain_(d), listener_(io) {
    std::error_code ec;
    std::filesystem::create_directories(opt_.runtime_dir, ec);
    if (ec)
        throw std::runtime_error("runtime_dir: cannot create " + opt_.runtime_dir + ": " +
                                 ec.message());
    path_ = opt_.runtime_dir + "/" + layout::socket_name;
    listener_.assign(listen_socket(path_, opt_.socket_mode));
}

intake::~intake() { stop(); }

void intake::start() { accept_more(); }

void intake::stop() {
    if (stopped_) return;
    stopped_ = true;
    boost::system::error_code ec;
    listener_.close(ec);
    ::unlink(path_.c_str());
}

void intake::accept_more() {
    listener_.async_wait(
        asio::posix::stream_descriptor::wait_read, [this](boost::system::error_code ec) {
            if (ec || stopped_) return;
            for (;;) {
                const int fd = ::accept4(listener_.native_handle(), nullptr, nullptr,
                                         SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd < 0) {
                    if (errno == EINTR) continue;
                    if (errno != EAGAIN && errno != EWOULDBLOCK)
                        log::limited(spdlog::level::warn, "ingest", "accept failed",
                                     {{"socket", path_}, {"error", std::strerror(errno)}});
                    break;
                }
                if (connections_.load() >= opt_.max_producers + 16) {
                    totals_.refused_limit.add(1);
                    reply(fd, layout::welcome_status::too_many);
                    ::close(fd);
                    continue;
                }
                connections_.fetch_add(1);
                auto c = std::make_shared<connection>(io_, fd);
                c->timer.expires_after(opt_.hello_timeout);
                c->timer.async_wait([c](boost::system::error_code tec) {
                    if (!tec && !c->prod) {
                        boost::system::error_code ignored;
                        c->sock.close(ignored);
                    }
                });
                c->sock.async_wait(asio::posix::stream_descriptor::wait_read,
                                   [this, c](boost::system::error_code wec) {
                                       c->timer.cancel();
                                       if (wec) {
                                           connections_.fetch_sub(1);
                                           return;
                                       }
                                       on_hello(c);
                                   });
            }
            accept_more();
        });
}

void intake::reply(int fd, layout::welcome_status s) {
    const layout::welcome_message w{layout::hello_magic,
                                    std::uint32_t(layout::message_type::welcome), std::uint32_t(s),
                                    std::uint32_t(::getpid())};
    (void)::send(fd, &w, sizeof w, MSG_NOSIGNAL | MSG_DONTWAIT);
}

void intake::on_hello(const std::shared_ptr<connection>& c) {
    const int fd = c->sock.native_handle();
    layout::hello_message hello{};
    iovec iov{&hello, sizeof hello};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);

    // Every passed descriptor is ours to close, whatever the message says.
    int memfd = -1;
    for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
        const std::size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t k = 0; k < count; ++k) {
            int passed;
            std::memcpy(&passed, CMSG_DATA(cm) + k * sizeof(int), sizeof(int));
            if (memfd < 0)
                memfd = passed;
            else
                ::close(passed);
        }
    }
    auto refuse = [&](layout::welcome_status s) {
        if (memfd >= 0) ::close(memfd);
        reply(fd, s);
        boost::system::error_code ignored;
        c->sock.close(ignored);
        connections_.fetch_sub(1);
    };
    if (n != static_cast<ssize_t>(sizeof hello) || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
        hello.magic != layout::hello_magic ||
        hello.type != std::uint32_t(layout::message_type::hello) ||
        hello.version != layout::protocol_version || memfd < 0) {
        totals_.refused_protocol.add(1);
        log::warn("ingest", "refused a registration: malformed hello",
                  {{"size", n}, {"fd", memfd >= 0}});
        return refuse(layout::welcome_status::bad_message);
    }
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        totals_.refused_protocol.add(1);
        return refuse(layout::welcome_status::bad_message);
    }
    if (drain_.producers().size() >= opt_.max_producers) {
        totals_.refused_limit.add(1);
        log::warn("ingest", "refused a registration: max_producers reached",
                  {{"pid", cred.pid}, {"max_producers", opt_.max_producers}});
        return refuse(layout::welcome_status::too_many);
    }
    for (const auto& p : drain_.producers()) {  // one segment per process
        if (p->pid() == cred.pid && p->state() != producer_state::finished && !p->gone()) {
            totals_.refused_duplicate.add(1);
            log::warn("ingest", "refused a registration: already registered", {{"pid", cred.pid}});
            return refuse(layout::welcome_status::duplicate);
        }
    }
    reject_reason why{};
    std::string detail;
    auto seg = mapped_segment::attach(memfd, why, detail);
    if (!seg) {
        totals_.rejected_for(why).add(1);
        log::error(
            "ingest", "refused a segment",
            {{"pid", cred.pid}, {"uid", cred.uid}, {"reason", to_string(why)}, {"detail", detail}});
        return refuse(layout::welcome_status::bad_segment);
    }
    seg->mark_attached(std::uint32_t(::getpid()));
    c->prod = std::make_shared<producer>(next_id_++, cred.pid, cred.uid, memfd, std::move(seg));
    log::info("ingest", "producer registered",
              {{"pid", cred.pid},
               {"uid", cred.uid},
               {"process", c->prod->name()},
               {"lanes", c->prod->seg_->geometry().lane_count},
               {"slots", c->prod->seg_->geometry().lane_slots},
               {"already_consumed", c->prod->stats().consumed_at_attach}});
    drain_.add(c->prod);
    reply(fd, layout::welcome_status::accepted);
    watch(c);
}

void intake::watch(const std::shared_ptr<connection>& c) {
    c->sock.async_wait(
        asio::posix::stream_descriptor::wait_read, [this, c](boost::system::error_code ec) {
            bool clean = false;
            bool closed = static_cast<bool>(ec);
            while (!closed) {
                layout::bye_message bye{};
                const ssize_t n = ::recv(c->sock.native_handle(), &bye, sizeof bye, MSG_DONTWAIT);
                if (n == static_cast<ssize_t>(sizeof bye) && bye.magic == layout::hello_magic &&
                    bye.type == std::uint32_t(layout::message_type::bye)) {
                    clean = true;  // the process is exiting; its socket closes when it is gone
                    continue;
                }
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                if (n <= 0) closed = true;
                // Any other message is ignored: the protocol has nothing else for this direction.
            }
            if (clean) c->prod->clean_.store(true);
            if (!closed) return watch(c);
            c->prod->mark_gone(c->prod->clean_.load());
            boost::system::error_code ignored;
            c->sock.close(ignored);
            connections_.fetch_sub(1);
        });
}

}  // namespace plugmon::agent
