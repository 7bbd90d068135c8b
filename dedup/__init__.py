"""Near-duplicate removal of evaluation images from the training data (ALIGN, Appendix A).

Public API: `dedup.beam_stage.FindNearDuplicatesOfEval` (the Beam stage of align-curate),
`dedup.config.DedupConfig` / `add_dedup_flags`, `dedup.index.EvalIndex` (bucketed search),
`dedup.eval_inputs.load_eval_image`; CLI `align-dedup` (dedup/cli.py). See docs/DEDUP.md.
"""
