// A C ABI around a Verilated top level, for ctypes (see sim/verilator.py).
//
// Ports are addressed by index into the table sim/verilator.py generates from the
// Verilated header (t2t_ports.h); values cross the ABI as little-endian arrays of 32-bit
// words whatever Verilator stores them in (CData/SData/IData/QData/VlWide).
//
// One clock cycle is: inputs already set -> eval with clk low (combinational outputs
// settle) -> every output stream beat with valid (and ready) is captured, since it
// transfers on the coming edge -> clk high, eval (registers update) -> clk low.
//
// run_frames() drives whole frames into an always-ready input stream, one beat per
// cycle, so Python pays one call per batch of frames rather than one per cycle.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "verilated.h"

namespace {

struct PortInfo {
    const char* name;
    int output;
    int width;
};

template <typename T> void* storage(T& value) { return &value; }
template <std::size_t N> void* storage(VlWide<N>& value) { return value.data(); }

}  // namespace

// Generated: `using T2tModel = V<top>;`, `T2T_PORTS[]` and `t2t_port_storage()`.
#include "t2t_ports.h"

namespace {

constexpr int PORT_COUNT = sizeof(T2T_PORTS) / sizeof(T2T_PORTS[0]);

int words_of(int width) { return (width + 31) / 32; }

// Bits [offset, offset+width) of a word array, width <= 32.
void insert_bits(uint32_t* words, int offset, int width, uint32_t value) {
    uint64_t mask = (width == 32 ? 0xFFFFFFFFull : ((1ull << width) - 1)) << (offset % 32);
    uint64_t bits = (uint64_t(value) << (offset % 32)) & mask;
    int w = offset / 32;
    words[w] = uint32_t((words[w] & ~mask) | bits);
    if ((offset % 32) + width > 32)
        words[w + 1] = uint32_t((words[w + 1] & ~(mask >> 32)) | (bits >> 32));
}

struct Port {
    void* ptr;
    int width;
    int output;
};

struct OutStream {
    int payload, valid, ready;  // ready < 0: always ready
    int words;
    std::vector<uint32_t> beats;  // `words` per captured beat
};

struct InStream {
    int payload = -1, valid = -1;
    int data_offset, lanes, be_offset, first_offset, last_offset;
    int words;
};

}  // namespace

struct T2tSim {
    std::unique_ptr<VerilatedContext> context;
    std::unique_ptr<T2tModel> model;
    Port ports[PORT_COUNT];
    uint8_t* clk = nullptr;
    uint8_t* rst = nullptr;
    InStream in;
    std::vector<OutStream> outs;
    uint64_t cycles = 0;
    int sample = -1;       // a flag port read with clk low in every cycle (an input's ready)
    bool sampled = false;  // its value in the last cycle

    void read(int i, uint32_t* out) const {
        const Port& p = ports[i];
        if (p.width <= 8) {
            out[0] = *static_cast<uint8_t*>(p.ptr);
        } else if (p.width <= 16) {
            out[0] = *static_cast<uint16_t*>(p.ptr);
        } else if (p.width <= 32) {
            out[0] = *static_cast<uint32_t*>(p.ptr);
        } else if (p.width <= 64) {
            uint64_t v = *static_cast<uint64_t*>(p.ptr);
            out[0] = uint32_t(v);
            out[1] = uint32_t(v >> 32);
        } else {
            std::memcpy(out, p.ptr, 4 * words_of(p.width));
        }
    }

    void write(int i, const uint32_t* in) {
        const Port& p = ports[i];
        int n = words_of(p.width);
        // Verilator expects the unused top bits of a port to stay zero.
        uint32_t top = (p.width % 32) ? ((1u << (p.width % 32)) - 1) : 0xFFFFFFFFu;
        if (p.width <= 8) {
            *static_cast<uint8_t*>(p.ptr) = uint8_t(in[0] & top);
        } else if (p.width <= 16) {
            *static_cast<uint16_t*>(p.ptr) = uint16_t(in[0] & top);
        } else if (p.width <= 32) {
            *static_cast<uint32_t*>(p.ptr) = in[0] & top;
        } else if (p.width <= 64) {
            *static_cast<uint64_t*>(p.ptr) = uint64_t(in[0]) | (uint64_t(in[1] & top) << 32);
        } else {
            uint32_t* dst = static_cast<uint32_t*>(p.ptr);
            std::memcpy(dst, in, 4 * (n - 1));
            dst[n - 1] = in[n - 1] & top;
        }
    }

    bool flag(int i) const { return *static_cast<uint8_t*>(ports[i].ptr) & 1; }

    // One cycle; returns the number of output beats captured.
    int cycle() {
        int captured = 0;
        *clk = 0;
        model->eval();
        if (sample >= 0) sampled = flag(sample);
        for (OutStream& s : outs) {
            if (flag(s.valid) && (s.ready < 0 || flag(s.ready))) {
                std::size_t at = s.beats.size();
                s.beats.resize(at + s.words);
                read(s.payload, s.beats.data() + at);
                ++captured;
            }
        }
        *clk = 1;
        model->eval();
        *clk = 0;
        ++cycles;
        return captured;
    }
};

extern "C" {

int t2t_port_count() { return PORT_COUNT; }
const char* t2t_port_name(int i) { return T2T_PORTS[i].name; }
int t2t_port_width(int i) { return T2T_PORTS[i].width; }
int t2t_port_is_output(int i) { return T2T_PORTS[i].output; }

T2tSim* t2t_create() {
    auto* sim = new T2tSim;
    sim->context = std::make_unique<VerilatedContext>();
    sim->context->threads(1);
    sim->model = std::make_unique<T2tModel>(sim->context.get(), "top");
    void* ptrs[PORT_COUNT];
    t2t_port_storage(sim->model.get(), ptrs);
    for (int i = 0; i < PORT_COUNT; ++i)
        sim->ports[i] = {ptrs[i], T2T_PORTS[i].width, T2T_PORTS[i].output};
    return sim;
}

void t2t_destroy(T2tSim* sim) {
    sim->model->final();
    delete sim;
}

void t2t_set(T2tSim* sim, int port, const uint32_t* words) { sim->write(port, words); }
void t2t_get(T2tSim* sim, int port, uint32_t* words) {
    sim->model->eval();
    sim->read(port, words);
}

// clk and rst are 1-bit ports; rst may be -1 for a design without reset.
void t2t_bind_clock(T2tSim* sim, int clk, int rst) {
    sim->clk = static_cast<uint8_t*>(sim->ports[clk].ptr);
    sim->rst = rst < 0 ? nullptr : static_cast<uint8_t*>(sim->ports[rst].ptr);
    *sim->clk = 0;
    sim->model->eval();
}

// Field offsets are bit positions inside the payload port (from the Amaranth layout).
void t2t_bind_input(T2tSim* sim, int payload, int valid, int data_offset, int lanes,
                    int be_offset, int first_offset, int last_offset) {
    InStream& in = sim->in;
    in.payload = payload;
    in.valid = valid;
    in.data_offset = data_offset;
    in.lanes = lanes;
    in.be_offset = be_offset;
    in.first_offset = first_offset;
    in.last_offset = last_offset;
    in.words = words_of(sim->ports[payload].width);
}

// Returns the stream's index for t2t_out_*; ready < 0 for an always-ready stream.
int t2t_bind_output(T2tSim* sim, int payload, int valid, int ready) {
    sim->outs.push_back({payload, valid, ready, words_of(sim->ports[payload].width), {}});
    if (ready >= 0) {
        uint32_t one = 1;
        sim->write(ready, &one);
    }
    return int(sim->outs.size()) - 1;
}

uint64_t t2t_cycles(T2tSim* sim) { return sim->cycles; }

uint64_t t2t_step(T2tSim* sim, uint64_t n) {
    for (uint64_t i = 0; i < n; ++i) sim->cycle();
    return n;
}

void t2t_reset(T2tSim* sim, int cycles) {
    if (sim->rst) *sim->rst = 1;
    t2t_step(sim, cycles);
    if (sim->rst) *sim->rst = 0;
    sim->model->eval();
}

// Steps until no output beat has been captured for `quiet` cycles in a row (or `limit`
// cycles have passed); returns the cycles stepped.
uint64_t t2t_drain(T2tSim* sim, uint64_t quiet, uint64_t limit) {
    uint64_t n = 0, still = 0;
    while (still < quiet && n < limit) {
        still = sim->cycle() ? 0 : still + 1;
        ++n;
    }
    return n;
}

// Frames back to back in `buffer`, `lengths[i]` bytes each; `idle` cycles with valid low
// after every frame. Empty frames are skipped. Returns the cycles simulated.
uint64_t t2t_run_frames(T2tSim* sim, const uint8_t* buffer, const uint32_t* lengths,
                        std::size_t count, uint32_t idle) {
    const InStream& in = sim->in;
    uint64_t start = sim->cycles;
    std::vector<uint32_t> beat(in.words);
    const uint32_t one = 1, zero = 0;
    const uint8_t* frame = buffer;
    for (std::size_t f = 0; f < count; ++f) {
        uint32_t len = lengths[f];
        for (uint32_t pos = 0; pos < len; pos += in.lanes) {
            uint32_t n = len - pos < uint32_t(in.lanes) ? len - pos : in.lanes;
            std::fill(beat.begin(), beat.end(), 0);
            for (uint32_t lane = 0; lane < n; ++lane)
                insert_bits(beat.data(), in.data_offset + 8 * lane, 8, frame[pos + lane]);
            uint32_t be = n == 32 ? 0xFFFFFFFFu : (1u << n) - 1;
            insert_bits(beat.data(), in.be_offset, in.lanes, be);
            insert_bits(beat.data(), in.first_offset, 1, pos == 0);
            insert_bits(beat.data(), in.last_offset, 1, pos + in.lanes >= len);
            sim->write(in.payload, beat.data());
            sim->write(in.valid, &one);
            sim->cycle();
        }
        sim->write(in.valid, &zero);
        for (uint32_t i = 0; i < idle; ++i) sim->cycle();
        frame += len;
    }
    sim->write(in.valid, &zero);
    return sim->cycles - start;
}

// Beats (`words` 32-bit words each, back to back in `beats`) into an input stream with
// backpressure: each is held with valid high until a cycle in which ready was high.
// Returns the cycles simulated.
uint64_t t2t_run_beats(T2tSim* sim, int payload, int valid, int ready, const uint32_t* beats,
                       std::size_t count) {
    uint64_t start = sim->cycles;
    const uint32_t one = 1, zero = 0;
    int words = words_of(sim->ports[payload].width);
    sim->sample = ready;
    for (std::size_t i = 0; i < count; ++i) {
        sim->write(payload, beats + i * words);
        sim->write(valid, &one);
        do sim->cycle(); while (!sim->sampled);
    }
    sim->write(valid, &zero);
    sim->sample = -1;
    return sim->cycles - start;
}

std::size_t t2t_out_beats(T2tSim* sim, int stream) {
    const OutStream& s = sim->outs[stream];
    return s.beats.size() / s.words;
}
int t2t_out_words(T2tSim* sim, int stream) { return sim->outs[stream].words; }
const uint32_t* t2t_out_data(T2tSim* sim, int stream) { return sim->outs[stream].beats.data(); }
void t2t_out_clear(T2tSim* sim, int stream) { sim->outs[stream].beats.clear(); }

}  // extern "C"
