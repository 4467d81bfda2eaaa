// Small helpers for tests that run command lines and compare bytes.
#pragma once

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <sys/wait.h>

namespace plugmon::test {

/// `s` as one single-quoted shell word.
inline std::string shell_quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

/// Lowercase hex of `bytes`, two digits per byte.
inline std::string hex(const std::string& bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned char b : bytes) {
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

/// The whole file at `path` ("" when unreadable).
inline std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

/// What a command line printed and how it exited.
struct run_result {
    int status = -1;  ///< the exit status; -1 when it did not exit normally or could not start
    std::string out, err;
    /// The last non-empty line of `out`.
    std::string last_line() const {
        std::string s = out;
        while (!s.empty() && s.back() == '\n') s.pop_back();
        return s.substr(s.rfind('\n') == std::string::npos ? 0 : s.rfind('\n') + 1);
    }
};

/// Runs `cmd` through the shell; stdout captured, stderr through the file `err_file`.
inline run_result run_shell(const std::string& cmd, const std::string& err_file) {
    run_result r;
    FILE* p = ::popen((cmd + " 2>" + shell_quote(err_file)).c_str(), "r");
    if (p == nullptr) return r;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
    const int st = ::pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.err = slurp(err_file);
    return r;
}

}  // namespace plugmon::test
