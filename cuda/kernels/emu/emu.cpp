// emu: runs kernels of ops.cu, from their own source, on the CPU (see
// cuda_emu.h). The cuda package's TestKernelsEmulated builds it with the
// host C++ compiler, with dispatch.inc generated from ops.cu's kernel
// signatures, and talks to it through two files:
//
//   emu REQUEST RESPONSE
//
// REQUEST (little-endian): u32 records; per record: u32 name length, the
// name, u32 grid, u32 block, u32 ints, i32 each, u32 floats, f32 each, u32
// buffers, and per buffer u32 words and its words (4 bytes each). Each
// record runs the kernel once on its own copies of the buffers; a buffer
// whose word count is 0xffffffff is followed by the index of an earlier
// buffer of the record whose memory it shares. RESPONSE: per record, per
// buffer, u32 words and the words after the launch (0xffffffff alone for
// an alias).
#include "cuda_emu.h"

#include <setjmp.h>
#include <ucontext.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "../ops.cu"

emu_dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace {

const size_t kStack = 64 * 1024;
const unsigned kAlias = 0xffffffffu;

// Fibers: made once with makecontext and entered once with swapcontext;
// from then on every switch is _setjmp/_longjmp, which, unlike swapcontext,
// make no system call (no signal mask to save): a barrier kernel's block
// switches 256 fibers per __syncthreads.
std::vector<ucontext_t> contexts;
std::vector<std::vector<char>> stacks;
std::vector<jmp_buf*> fiberEnv;
jmp_buf schedulerEnv;
std::vector<int> done;
int current;
void (*body)(void*);
void* bodyArg;
bool inFibers;

// yield saves the running fiber and returns to the scheduler.
void yield() {
    if (!_setjmp(*fiberEnv[current])) _longjmp(schedulerEnv, 1);
}

// fiberMain is a fiber's life: it parks at once, then runs the thread
// body of each block it is resumed for.
void fiberMain() {
    for (;;) {
        yield();
        body(bodyArg);
        done[current] = 1;
    }
}

// resume switches to fiber t until it yields (at __syncthreads, at the end
// of its body, or, new, at its first park).
void resume(int t) {
    current = t;
    threadIdx = {(unsigned)t, 0, 0};
    if (!_setjmp(schedulerEnv)) _longjmp(*fiberEnv[t], 1);
}

void makeFibers(unsigned n) {
    for (unsigned t = (unsigned)contexts.size(); t < n; t++) {
        contexts.emplace_back();
        stacks.emplace_back(kStack);
        fiberEnv.push_back(new jmp_buf[1]);
        done.push_back(1);
    }
    for (unsigned t = 0; t < n; t++) {
        if (contexts[t].uc_stack.ss_sp) continue;
        ucontext_t back;
        getcontext(&contexts[t]);
        contexts[t].uc_stack.ss_sp = stacks[t].data();
        contexts[t].uc_stack.ss_size = kStack;
        contexts[t].uc_link = nullptr;  // a fiber never returns
        makecontext(&contexts[t], fiberMain, 0);
        current = (int)t;
        if (!_setjmp(schedulerEnv)) swapcontext(&back, &contexts[t]);  // runs to the first park
    }
}

// run launches body on a grid of grid x block threads: blocks one after
// the other, each block's threads as fibers stepped from barrier to
// barrier, or, for a kernel without __syncthreads (barriers false), one
// after the other as plain calls.
void run(unsigned grid, unsigned block, bool barriers, void (*fn)(void*), void* arg) {
    body = fn;
    bodyArg = arg;
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    inFibers = barriers;
    if (!barriers) {
        for (unsigned b = 0; b < grid; b++) {
            blockIdx = {b, 0, 0};
            for (unsigned t = 0; t < block; t++) {
                threadIdx = {t, 0, 0};
                fn(arg);
            }
        }
        return;
    }
    makeFibers(block);
    for (unsigned b = 0; b < grid; b++) {
        blockIdx = {b, 0, 0};
        for (unsigned t = 0; t < block; t++) done[t] = 0;
        for (bool live = true; live;) {
            live = false;
            for (unsigned t = 0; t < block; t++) {
                if (done[t]) continue;
                resume((int)t);
                if (!done[t]) live = true;
            }
        }
    }
}

}  // namespace

void __syncthreads() {
    if (!inFibers) throw std::logic_error("__syncthreads in a kernel launched without barriers (the dispatch's barrier analysis missed a call)");
    yield();
}

// launch runs a lambda over the grid.
template <class F>
void launch(unsigned grid, unsigned block, bool barriers, F f) {
    run(grid, block, barriers, [](void* p) { (*static_cast<F*>(p))(); }, &f);
}

// dispatch calls kernel name with its ints I, floats F and buffers B
// (generated from ops.cu's signatures: dispatch.inc).
static void dispatch(const std::string& name, unsigned grid, unsigned block, const std::vector<int>& I,
                     const std::vector<float>& F, std::vector<void*>& B) {
#include "dispatch.inc"
    throw std::runtime_error("no kernel " + name);
}

static unsigned readU32(FILE* f) {
    unsigned v;
    if (fread(&v, 4, 1, f) != 1) throw std::runtime_error("request: short read");
    return v;
}

int main(int argc, char** argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: emu REQUEST RESPONSE\n");
        return 2;
    }
    try {
        FILE* in = fopen(argv[1], "rb");
        FILE* out = fopen(argv[2], "wb");
        if (!in || !out) throw std::runtime_error("cannot open the request or the response");
        unsigned records = readU32(in);
        for (unsigned r = 0; r < records; r++) {
            std::string name(readU32(in), '\0');
            if (fread(&name[0], 1, name.size(), in) != name.size()) throw std::runtime_error("request: short name");
            unsigned grid = readU32(in), block = readU32(in);
            std::vector<int> I(readU32(in));
            for (auto& v : I) v = (int)readU32(in);
            std::vector<float> F(readU32(in));
            for (auto& v : F) {
                unsigned u = readU32(in);
                std::memcpy(&v, &u, 4);
            }
            std::vector<std::vector<uint32_t>> bufs(readU32(in));
            std::vector<void*> B;
            for (auto& b : bufs) {
                unsigned words = readU32(in);
                if (words == kAlias) {  // the same memory as an earlier buffer of the launch
                    unsigned j = readU32(in);
                    if (j >= B.size()) throw std::runtime_error("request: alias of a later buffer");
                    B.push_back(B[j]);
                    continue;
                }
                b.resize(words + 4);  // slack: a 16-byte load past a short tail stays inside
                if (fread(b.data(), 4, words, in) != words) throw std::runtime_error("request: short buffer");
                B.push_back(b.data());
            }
            dispatch(name, grid, block, I, F, B);
            for (auto& b : bufs) {
                unsigned words = b.empty() ? kAlias : (unsigned)b.size() - 4;
                fwrite(&words, 4, 1, out);
                if (!b.empty()) fwrite(b.data(), 4, words, out);
            }
        }
        if (fclose(out) != 0) throw std::runtime_error("writing the response");
        fclose(in);
    } catch (const std::exception& e) {
        fprintf(stderr, "emu: %s\n", e.what());
        return 1;
    }
    return 0;
}
