// Greedy generation with llama.cpp on one thread, for bench/arm_insn/llama_token.sh, which
// runs it under qemu-aarch64 with the instruction-counting plugin for two token counts: the
// difference per token is what llama.cpp executes to generate one token (forward pass of one
// token, greedy sampling over the vocabulary), at whatever kernels its CPU backend picks.
//
//   llama_decode MODEL.gguf N_PREDICT
//
// The prompt is fixed; end-of-generation tokens do not stop the loop (every run decodes
// exactly N_PREDICT tokens after the prompt). Nothing printed depends on N_PREDICT or on the
// generated tokens, so the output costs the same in both runs.
#include "llama.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

static void set_tokens(llama_batch_ext * b, const llama_token * t, int n, llama_pos pos0) {
    llama_batch_ext_clear(b);
    for (int i = 0; i < n; i++) {
        const int32_t idx = llama_batch_ext_add_token(b, 0, t[i]);
        const llama_pos pos = pos0 + i;
        llama_batch_ext_set_pos(b, idx, &pos);
    }
    llama_batch_ext_set_output_logits(b, n - 1, true);
}

static void quiet(ggml_log_level, const char *, void *) {}

int main(int argc, char ** argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL.gguf N_PREDICT\n", argv[0]);
        return 2;
    }
    const int n_predict = atoi(argv[2]);
    const char * prompt = "The capital of France is";
    llama_log_set(quiet, nullptr);
    llama_backend_init();

    llama_model_params mp = llama_model_default_params();
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        fprintf(stderr, "cannot load %s\n", argv[1]);
        return 1;
    }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const int n_prompt = -llama_tokenize(vocab, prompt, strlen(prompt), nullptr, 0, true, true);
    std::vector<llama_token> toks(n_prompt);
    llama_tokenize(vocab, prompt, strlen(prompt), toks.data(), n_prompt, true, true);

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 256;
    cp.n_batch = 64;
    cp.n_threads = 1;
    cp.n_threads_batch = 1;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "cannot create a context\n");
        return 1;
    }
    llama_sampler * smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(smpl, llama_sampler_init_greedy());

    llama_batch_ext * batch = llama_batch_ext_init(ctx);
    set_tokens(batch, toks.data(), n_prompt, 0);
    int pos = 0, n = n_prompt;
    for (int i = 0; i <= n_predict; i++) {
        if (llama_process(ctx, LLAMA_PROCESS_TYPE_DECODE, batch)) {
            fprintf(stderr, "decode failed\n");
            return 1;
        }
        pos += n;
        if (i == n_predict) {
            break;
        }
        llama_token t = llama_sampler_sample(smpl, ctx, -1);
        set_tokens(batch, &t, 1, pos);
        n = 1;
    }
    puts("done");
    llama_batch_ext_free(batch);
    llama_sampler_free(smpl);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
