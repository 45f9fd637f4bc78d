// The header compiles as C++ and its functions link with C linkage.
#include <memory>

#include "replicore.h"

struct MapFree {
    void operator()(replicore_extent_map *m) const { replicore_extent_map_free(m); }
};

int main() {
    replicore_extent_map *raw = nullptr;
    if (replicore_extent_map_new(4096, &raw) != REPLICORE_OK) return 1;
    std::unique_ptr<replicore_extent_map, MapFree> map(raw);
    return replicore_extent_map_insert_zero(map.get(), 0, 4096) == REPLICORE_OK ? 0 : 1;
}
