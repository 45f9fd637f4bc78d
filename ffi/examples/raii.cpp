// replicore from C++: every handle owned by a std::unique_ptr whose deleter is the matching
// _free function, every status turned into an exception carrying the library's message.
// A disk is seeded into a vault and failed over, and the image compared.
//
// Build (after ffi/install.sh --prefix PREFIX):
//   c++ -std=c++17 raii.cpp $(pkg-config --cflags --libs replicore)
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include "replicore.h"

namespace replicore {

template <typename T, void (*Free)(T *)>
struct Deleter {
    void operator()(T *p) const noexcept { Free(p); }
};

using Key = std::unique_ptr<replicore_key, Deleter<replicore_key, replicore_key_free>>;
using Log = std::unique_ptr<replicore_log, Deleter<replicore_log, replicore_log_free>>;
using Vault = std::unique_ptr<replicore_vault, Deleter<replicore_vault, replicore_vault_free>>;

struct Error : std::runtime_error {
    replicore_status status;
    Error(replicore_status s, const char *what)
        : std::runtime_error(std::string(replicore_status_name(s)) + ": " + what), status(s) {}
};

inline void check(replicore_status s) {
    if (s != REPLICORE_OK) throw Error(s, replicore_last_error_message());
}

}  // namespace replicore

static std::vector<char> read_all(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<char>(std::istreambuf_iterator<char>(f), {});
}

int main() {
    char tmpl[] = "/tmp/replicore-raii-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return 2;
    const std::string dir = tmpl;
    int rc = 1;
    try {
        const std::string disk = dir + "/os.img";
        {
            std::ofstream f(disk, std::ios::binary);
            for (int i = 0; i < (3 << 20); i++) f.put(static_cast<char>(i % 7 == 0 ? 0 : i * 13));
        }
        uint8_t master[REPLICORE_MASTER_KEY_LEN];
        replicore::check(replicore_master_key_generate(master));
        replicore_key *raw_key = nullptr;
        replicore::check(replicore_key_generate((dir + "/k.rckey").c_str(), master, nullptr, &raw_key));
        replicore::Key key(raw_key);

        const char *names[] = {"os"};
        const char *images[] = {disk.c_str()};
        replicore_log *raw_log = nullptr;
        const std::string base = dir + "/base.rcb";
        replicore::check(replicore_seed("vm-cpp", names, images, 1, key.get(), (dir + "/l.rclog").c_str(),
                                        (dir + "/l.rcship").c_str(), base.c_str(), 65536, nullptr, nullptr,
                                        &raw_log));
        replicore::Log log(raw_log);

        replicore_vault *raw_vault = nullptr;
        replicore::check(replicore_vault_create((dir + "/vault").c_str(), &raw_vault));
        replicore::Vault vault(raw_vault);
        replicore_ingest_info info{};
        replicore::check(replicore_vault_ingest(vault.get(), base.c_str(), nullptr, nullptr, &info));

        size_t count = 0;
        replicore::check(replicore_vault_points(vault.get(), "vm-cpp", nullptr, 0, &count));
        std::vector<replicore_point_info> points(count);
        replicore::check(replicore_vault_points(vault.get(), "vm-cpp", points.data(), points.size(), &count));

        const std::string out = dir + "/restored.img";
        replicore::check(replicore_vault_materialize(vault.get(), "vm-cpp", points.at(0).id, "os", key.get(),
                                                     out.c_str(), nullptr, nullptr));
        bool same = read_all(out) == read_all(disk);
        std::printf("raii: %zu point(s); the restored image %s the disk\n", count, same ? "equals" : "DIFFERS FROM");

        // An error becomes an exception with the library's message; the handles still free.
        try {
            replicore::check(replicore_vault_ingest(vault.get(), (dir + "/missing.rcb").c_str(), nullptr,
                                                    nullptr, nullptr));
            same = false;
        } catch (const replicore::Error &e) {
            std::printf("raii: as expected, %s\n", e.what());
            same = same && e.status == REPLICORE_ERR_NOT_FOUND;
        }
        rc = same ? 0 : 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "raii: %s\n", e.what());
    }
    std::system(("rm -rf " + dir).c_str());
    return rc;
}
