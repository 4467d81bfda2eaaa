// The shape key (probe/statement_shape.hpp) and the normaliser on 1 MB texts built to be hard:
// one long word, strings and comments that never end, a megabyte of constants or of signs. Prints
// the median ns per byte of 7 runs of each, to show both stay linear in the text.
//   build/bench/statement_shape_bench
#include "../probe/fingerprint.hpp"
#include "../probe/statement_shape.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace {

template <class Fn>
double median_ns_per_byte(const std::string& text, Fn fn) {
    std::vector<double> runs;
    for (int r = 0; r < 7; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        fn(text);
        const auto t1 = std::chrono::steady_clock::now();
        runs.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() /
                       double(text.size()));
    }
    std::sort(runs.begin(), runs.end());
    return runs[runs.size() / 2];
}

std::string repeated(const std::string& piece, std::size_t size, std::string text = "") {
    while (text.size() < size) text += piece;
    return text;
}

}  // namespace

int main() {
    constexpr std::size_t mb = std::size_t(1) << 20;
    const struct {
        const char* name;
        std::string text;
    } cases[] = {
        {"one 1 MB word", "select " + std::string(mb, 'a')},
        {"an unterminated string", "select '" + std::string(mb, 'a')},
        {"an unterminated block comment", "select /* " + std::string(mb, 'a')},
        {"1 MB of 1,'x',", repeated("1,'x',", mb, "select ")},
        {"1 MB of realistic SQL",
         repeated("SELECT i.id, i.total FROM invoices i WHERE i.tenant_id = 42 AND i.status = "
                  "'open' AND i.x = 7 ",
                  mb)},
        {"1 MB of - (a comment)", "select " + std::string(mb, '-')},
        {"1 MB of spaces, then -1", "select " + std::string(mb, ' ') + "-1"},
    };
    std::printf("%-32s %10s %18s %18s\n", "text", "bytes", "shape key ns/B", "normalise ns/B");
    volatile std::uint64_t sink = 0;
    for (const auto& c : cases) {
        const double shape = median_ns_per_byte(c.text, [&](const std::string& t) {
            sink = sink + plugmon::detail::statement_shape(t);
        });
        const double norm = median_ns_per_byte(c.text, [&](const std::string& t) {
            char out[plugmon::detail::statement_max_length];
            sink = sink + plugmon::detail::normalize_statement(t, out, sizeof out);
        });
        std::printf("%-32s %10zu %18.2f %18.2f\n", c.name, c.text.size(), shape, norm);
    }
    return 0;
}
