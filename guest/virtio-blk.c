/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* virtio block device (5.2): requests as header / data / status chains,
 * at most 64 KiB of data each (256 KiB for `blk bench`), one at a time. */
#include "console.h"
#include "lib.h"
#include "virtio.h"

#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9

/* struct virtio_blk_config */
#define BLK_CFG_CAPACITY 0
#define BLK_CFG_SIZE_MAX 8
#define BLK_CFG_SEG_MAX 12
#define BLK_CFG_BLK_SIZE 20

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_ID_BYTES 20
#define STATUS_UNTOUCHED 0xff

#define SECTOR 512
#define BLK_MAX_DISKS 4
#define BLK_BUF_SIZE (64u << 10)
#define BLK_MAX_COUNT (1u << 20) /* sectors per command: 512 MiB */
#define BLK_TIMEOUT_NS 3000000000ULL
#define BENCH_BUF_SIZE (256u << 10)
#define BENCH_RAND_SIZE 4096u
#define BENCH_MAX_COUNT (1ULL << 24) /* sectors per command: 8 GiB */
#define BENCH_MAX_READS 10000000ULL

struct blk_req_hdr {
        uint32_t type;
        uint32_t reserved;
        uint64_t sector;
};

struct blk_disk {
        struct virtio_dev dev;
        uint64_t capacity; /* 512-byte sectors */
        uint32_t blk_size, seg_max, size_max;
        uint32_t chunk; /* bytes of data per request */
};

static struct blk_disk disks[BLK_MAX_DISKS];
static unsigned n_disks;
static uint8_t blk_buf[BLK_BUF_SIZE] __attribute__((aligned(4096)));
static struct blk_req_hdr blk_hdr __attribute__((aligned(16)));
static volatile uint8_t blk_status;
/* bench/virtio's buffer: larger requests, never checked or hashed. */
static uint8_t bench_buf[BENCH_BUF_SIZE] __attribute__((aligned(4096)));
static const char *const disk_names[BLK_MAX_DISKS] = { "virtio-blk0", "virtio-blk1", "virtio-blk2", "virtio-blk3" };

static void blk_probe(struct pci_dev *pci) {
        if (n_disks >= BLK_MAX_DISKS) {
                kprintf("virtio-blk: %02x:%02x.%u: more than %u disks, not used\n", pci->bus, pci->slot, pci->fn,
                        BLK_MAX_DISKS);
                return;
        }
        struct blk_disk *b = &disks[n_disks];
        uint64_t wanted = 1ULL << VIRTIO_BLK_F_SIZE_MAX | 1ULL << VIRTIO_BLK_F_SEG_MAX | 1ULL << VIRTIO_BLK_F_RO |
                          1ULL << VIRTIO_BLK_F_BLK_SIZE | 1ULL << VIRTIO_BLK_F_FLUSH;
        if (!virtio_pci_setup(&b->dev, pci, disk_names[n_disks], wanted, 1))
                return;
        struct virtio_dev *v = &b->dev;
        if (!virtio_cfg_read(v, BLK_CFG_CAPACITY, &b->capacity, 8)) {
                kprintf("%s: refused: no capacity in the device config\n", v->name);
                return;
        }
        b->blk_size = SECTOR;
        if (virtio_has(v, VIRTIO_BLK_F_BLK_SIZE) && !virtio_cfg_read(v, BLK_CFG_BLK_SIZE, &b->blk_size, 4))
                b->blk_size = SECTOR;
        b->seg_max = b->size_max = 0;
        if (virtio_has(v, VIRTIO_BLK_F_SEG_MAX))
                (void) virtio_cfg_read(v, BLK_CFG_SEG_MAX, &b->seg_max, 4);
        if (virtio_has(v, VIRTIO_BLK_F_SIZE_MAX))
                (void) virtio_cfg_read(v, BLK_CFG_SIZE_MAX, &b->size_max, 4);
        /* One data descriptor per request: it must respect size_max. */
        b->chunk = BLK_BUF_SIZE;
        if (b->size_max && b->size_max < b->chunk)
                b->chunk = b->size_max < SECTOR ? SECTOR : b->size_max & ~(SECTOR - 1);
        kprintf("%s: capacity %lu sectors, blk_size %u, seg_max %u, size_max %u%s%s\n", v->name, b->capacity,
                b->blk_size, b->seg_max, b->size_max, virtio_has(v, VIRTIO_BLK_F_RO) ? ", read-only" : "",
                virtio_has(v, VIRTIO_BLK_F_FLUSH) ? ", flush" : "");
        n_disks++;
}

const struct virtio_driver virtio_blk_driver = { VIRTIO_ID_BLOCK, "virtio-blk", blk_probe };

static const char *status_name(uint8_t s) {
        switch (s) {
        case VIRTIO_BLK_S_OK:
                return "OK";
        case VIRTIO_BLK_S_IOERR:
                return "IOERR";
        case VIRTIO_BLK_S_UNSUPP:
                return "UNSUPP";
        case STATUS_UNTOUCHED:
                return "not written by the device";
        default:
                return "unknown status";
        }
}

/* One request; data (len bytes, 0 for none) is device-writable when
 * reading. Prints why and returns false unless the status is OK. */
static bool blk_request(struct blk_disk *b, const char *what, uint32_t type, uint64_t sector, void *data,
                        uint32_t len, bool data_in) {
        blk_hdr = (struct blk_req_hdr) { .type = type, .sector = sector };
        blk_status = STATUS_UNTOUCHED;
        struct vq_buf bufs[3];
        unsigned n = 0;
        bufs[n++] = (struct vq_buf) { &blk_hdr, sizeof(blk_hdr), false };
        if (len)
                bufs[n++] = (struct vq_buf) { data, len, data_in };
        bufs[n++] = (struct vq_buf) { (void *) &blk_status, 1, true };
        int64_t used = vq_submit_wait(&b->dev.vqs[0], bufs, n, BLK_TIMEOUT_NS);
        if (used < 0) {
                kprintf("blk %s: sector %lu: request failed\n", what, sector);
                return false;
        }
        uint8_t s = blk_status;
        if (s != VIRTIO_BLK_S_OK) {
                kprintf("blk %s: sector %lu: %s (status %u)\n", what, sector, status_name(s), s);
                return false;
        }
        if (used < 1)
                kprintf("blk %s: sector %lu: note: used length %ld does not count the status byte\n", what, sector,
                        used);
        return true;
}

/* splitmix64 of (seed, sector, word): the same bytes for the same sector
 * whatever the request boundaries; tests/qemu computes it too. */
static uint64_t pattern_word(uint64_t seed, uint64_t sector, uint64_t word) {
        uint64_t z = seed + sector * 0x9e3779b97f4a7c15ULL + word * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static void pattern_fill(uint64_t *p, uint64_t seed, uint64_t sector, uint32_t sectors) {
        for (uint32_t s = 0; s < sectors; s++)
                for (unsigned w = 0; w < SECTOR / 8; w++)
                        *p++ = pattern_word(seed, sector + s, w);
}

#define FNV64_OFFSET 0xcbf29ce484222325ULL
#define FNV64_PRIME 0x100000001b3ULL

static uint64_t fnv1a64(uint64_t h, const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                h = (h ^ p[i]) * FNV64_PRIME;
        return h;
}

static void blk_info(struct blk_disk *b, unsigned idx) {
        struct virtio_dev *v = &b->dev;
        char serial[VIRTIO_BLK_ID_BYTES + 1] = { 0 };
        uint8_t id[VIRTIO_BLK_ID_BYTES] __attribute__((aligned(8)));
        memset(id, 0, sizeof(id));
        bool have_id = blk_request(b, "id", VIRTIO_BLK_T_GET_ID, 0, id, sizeof(id), true);
        /* Up to 20 bytes, NUL-terminated only if shorter (5.2.6). */
        for (unsigned i = 0; have_id && i < VIRTIO_BLK_ID_BYTES && id[i]; i++)
                serial[i] = id[i] >= ' ' && id[i] < 0x7f ? (char) id[i] : '?';
        kprintf("blk%u: %02x:%02x.%u capacity %lu sectors (%lu bytes) blk_size %u ro %u flush %u serial '%s'\n", idx,
                v->pci->bus, v->pci->slot, v->pci->fn, b->capacity, b->capacity * SECTOR, b->blk_size,
                virtio_has(v, VIRTIO_BLK_F_RO), virtio_has(v, VIRTIO_BLK_F_FLUSH), serial);
        kprintf("blk%u: features 0x%lx irq %s interrupts %u config %u\n", idx, v->features,
                virtio_irq_mode_name(v->irq_mode), v->vqs[0].irqs, v->config_irqs);
}

enum blk_op { BLK_READ, BLK_WRITE, BLK_VERIFY };

static void blk_rw(struct blk_disk *b, enum blk_op op, uint64_t sector, uint64_t count, uint64_t seed) {
        static const char *const names[] = { "read", "write", "verify" };
        const char *name = names[op];
        struct virtqueue *q = &b->dev.vqs[0];
        uint32_t irqs = q->irqs;
        uint32_t per_req = b->chunk / SECTOR;
        uint64_t hash = FNV64_OFFSET;
        unsigned requests = 0;

        for (uint64_t done = 0; done < count;) {
                uint32_t n = count - done < per_req ? count - done : per_req;
                uint64_t s = sector + done;
                if (op == BLK_WRITE)
                        pattern_fill((uint64_t *) blk_buf, seed, s, n);
                requests++;
                if (!blk_request(b, name, op == BLK_WRITE ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, s, blk_buf,
                                 n * SECTOR, op != BLK_WRITE))
                        return;
                if (op == BLK_READ)
                        hash = fnv1a64(hash, blk_buf, n * SECTOR);
                if (op == BLK_VERIFY) {
                        const uint64_t *p = (const uint64_t *) blk_buf;
                        for (uint32_t k = 0; k < n * SECTOR / 8; k++) {
                                uint64_t want = pattern_word(seed, s + k / (SECTOR / 8), k % (SECTOR / 8));
                                if (p[k] != want) {
                                        kprintf("blk verify: mismatch at byte offset %lu (sector %lu): got "
                                                "0x%016lx expected 0x%016lx\n",
                                                done * SECTOR + (uint64_t) k * 8, s + k / (SECTOR / 8), p[k], want);
                                        return;
                                }
                        }
                }
                done += n;
        }
        switch (op) {
        case BLK_READ:
                kprintf("blk read: sector %lu count %lu fnv1a64 0x%016lx\n", sector, count, hash);
                break;
        case BLK_WRITE:
                kprintf("blk write: sector %lu count %lu pattern 0x%lx ok\n", sector, count, seed);
                break;
        case BLK_VERIFY:
                kprintf("blk verify: sector %lu count %lu pattern 0x%lx: verify ok\n", sector, count, seed);
                break;
        }
        kprintf("blk %s: %u request(s), interrupts +%u\n", name, requests, q->irqs - irqs);
}

/* Throughput loops for bench/virtio: the data is neither generated nor
 * hashed per request, so the guest's own work per byte stays small next to
 * the device's. Sequential: requests of req_kib (rounded down to size_max)
 * over [sector, sector + count). randread: n 4 KiB reads at 4 KiB-aligned
 * offsets drawn by xorshift64 from the whole disk. The host times them. */
static void blk_bench(struct blk_disk *b, const char *op, uint64_t sector, uint64_t count, uint64_t req_kib,
                      uint64_t n, uint64_t seed) {
        struct virtqueue *q = &b->dev.vqs[0];
        uint32_t irqs = q->irqs;
        bool rand = strcmp(op, "randread") == 0, write = strcmp(op, "write") == 0;
        uint32_t req = rand ? BENCH_RAND_SIZE : (uint32_t) req_kib << 10;
        if (b->size_max && b->size_max < req)
                req = b->size_max < SECTOR ? SECTOR : b->size_max & ~(SECTOR - 1);
        uint32_t per_req = req / SECTOR;
        uint64_t requests = 0, bytes = 0, x = seed ? seed : 0x9e3779b97f4a7c15ULL;
        uint64_t slots = b->capacity / per_req;

        if (rand && slots == 0) {
                console_puts("blk bench: the disk is smaller than 4 KiB\n");
                return;
        }
        if (write)
                pattern_fill((uint64_t *) bench_buf, seed, 0, per_req);
        for (uint64_t done = 0; rand ? requests < n : done < count;) {
                uint64_t s;
                uint32_t k = per_req;
                if (rand) {
                        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                        s = x % slots * per_req;
                } else {
                        k = count - done < per_req ? (uint32_t) (count - done) : per_req;
                        s = sector + done;
                        done += k;
                }
                if (!blk_request(b, op, write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, s, bench_buf, k * SECTOR, !write)) {
                        kprintf("blk bench %s: stopped after %lu request(s)\n", op, requests);
                        return;
                }
                requests++;
                bytes += k * SECTOR;
        }
        kprintf("blk bench %s: %lu request(s) of up to %u bytes, %lu bytes, interrupts +%u\n", op, requests, req, bytes,
                q->irqs - irqs);
}

static void blk_usage(void) {
        console_puts("usage: blk [DISK] [info]\n"
                     "       blk [DISK] read SECTOR COUNT\n"
                     "       blk [DISK] write SECTOR COUNT PATTERN [force]\n"
                     "       blk [DISK] verify SECTOR COUNT PATTERN\n"
                     "       blk [DISK] flush\n"
                     "       blk [DISK] bench read|write SECTOR COUNT [REQ_KIB]\n"
                     "       blk [DISK] bench randread N [SEED]\n");
}

void virtio_blk_cmd(int argc, char **argv) {
        unsigned disk = 0;
        int a = 1;
        uint64_t num;
        if (a < argc && parse_u64(argv[a], &num)) {
                if (num >= n_disks) {
                        kprintf("blk: no disk %lu (%u found)\n", num, n_disks);
                        return;
                }
                disk = num;
                a++;
        }
        if (n_disks == 0) {
                console_puts("blk: no virtio-blk device\n");
                return;
        }
        struct blk_disk *b = &disks[disk];
        const char *op = a < argc ? argv[a++] : "info";

        if (strcmp(op, "info") == 0 && a == argc) {
                if (disk == 0 && argc == 1)
                        for (unsigned i = 0; i < n_disks; i++)
                                blk_info(&disks[i], i);
                else
                        blk_info(b, disk);
                return;
        }
        if (strcmp(op, "flush") == 0 && a == argc) {
                if (!virtio_has(&b->dev, VIRTIO_BLK_F_FLUSH)) {
                        console_puts("blk flush: the device has no VIRTIO_BLK_F_FLUSH (it writes through)\n");
                        return;
                }
                if (blk_request(b, "flush", VIRTIO_BLK_T_FLUSH, 0, NULL, 0, false))
                        console_puts("blk flush: ok\n");
                return;
        }

        if (strcmp(op, "bench") == 0) {
                /* In range only: bench is for speed, errors are tested above. */
                uint64_t sector = 0, count = 0, req_kib = BENCH_BUF_SIZE >> 10, n = 0, seed = 0;
                const char *what = a < argc ? argv[a++] : "";
                bool seq = strcmp(what, "read") == 0 || strcmp(what, "write") == 0;
                if (seq && (argc - a == 2 || argc - a == 3) && parse_u64(argv[a], &sector) &&
                    parse_u64(argv[a + 1], &count) && (argc - a == 2 || parse_u64(argv[a + 2], &req_kib)) &&
                    count > 0 && count <= BENCH_MAX_COUNT && req_kib >= 1 && req_kib <= BENCH_BUF_SIZE >> 10 &&
                    sector <= b->capacity && count <= b->capacity - sector) {
                        if (strcmp(what, "write") == 0 && virtio_has(&b->dev, VIRTIO_BLK_F_RO))
                                console_puts("blk bench write: refused: the device is read-only\n");
                        else
                                blk_bench(b, what, sector, count, req_kib, 0, 0x6265);
                } else if (strcmp(what, "randread") == 0 && (argc - a == 1 || argc - a == 2) &&
                           parse_u64(argv[a], &n) && n > 0 && n <= BENCH_MAX_READS &&
                           (argc - a == 1 || parse_u64(argv[a + 1], &seed)))
                        blk_bench(b, what, 0, 0, 0, n, seed);
                else
                        blk_usage();
                return;
        }

        enum blk_op o;
        int want;
        if (strcmp(op, "read") == 0)
                o = BLK_READ, want = 2;
        else if (strcmp(op, "write") == 0)
                o = BLK_WRITE, want = 3;
        else if (strcmp(op, "verify") == 0)
                o = BLK_VERIFY, want = 3;
        else {
                blk_usage();
                return;
        }
        bool force = o == BLK_WRITE && argc - a == 4 && strcmp(argv[argc - 1], "force") == 0;
        uint64_t sector, count, seed = 0;
        if (argc - a != want + force || !parse_u64(argv[a], &sector) || !parse_u64(argv[a + 1], &count) ||
            (want == 3 && !parse_u64(argv[a + 2], &seed)) || count == 0 || count > BLK_MAX_COUNT ||
            sector > UINT64_MAX - count) {
                blk_usage();
                return;
        }
        if (o == BLK_WRITE && virtio_has(&b->dev, VIRTIO_BLK_F_RO) && !force) {
                console_puts("blk write: refused: the device is read-only (VIRTIO_BLK_F_RO)\n");
                return;
        }
        /* Past the end is sent anyway: the device must answer IOERR. */
        if (sector + count > b->capacity)
                kprintf("blk %s: note: sectors %lu..%lu go past the capacity %lu\n", op, sector, sector + count - 1,
                        b->capacity);
        blk_rw(b, o, sector, count, seed);
}
