"""Training: the shared loop's pieces and the trainers (S1, S2; CLVP's ``clvp.train`` uses the same pieces).

Every trainer (``python -m gpt_sovits.train.s1``, ``gpt_sovits.train.s2``, ``clvp.train``) is built from
the same pieces, so a person sees the same behaviour everywhere:

- **One contract** — each trainer takes a typed config dataclass (``S1TrainConfig``, ``S2TrainConfig``,
  ``clvp.train.ClvpTrainConfig``) and runs as ``train(cfg, events, should_stop) -> result``; its
  ``main(argv)`` only parses, builds the config, runs and returns an exit code (``progress.run_trainer``).
- **CLI** (``cli``) — ``add_common_args(parser)`` adds ``--exp-dir --exp-name --pretrained-dir
  --weights-dir --epochs --batch-size --save-every --device --seed --fresh --config --events
  --keep-exports --checkpoint-minutes``; ``parse_args(parser, argv)`` reads ``--config FILE`` (JSON written
  by the caller, keys spelled like the flags, with ``-`` or ``_``) as defaults, and flags given on the
  command line win; ``config_from_args(ConfigClass, args)`` turns the parsed arguments into the config.
  ``RunConfig`` holds the common options' fields and checks; the S1 and S2 configs extend it.
- **Run folder** (``run_dir``) — ``RunDir(<exp>/s1_train)`` holds ``config.json`` (effective config,
  atomic), ``metrics.jsonl`` (one JSON object per logged step: ``{"step", "epoch", "time", "loss/...": ...}``),
  ``checkpoint.pt`` (full resumable state) and ``log.txt``. ``RunDir.prepare(fresh=...)`` starts a run:
  with ``fresh`` the old state is MOVED into ``<run>/.trash/fresh-<stamp>/`` (recoverable, never deleted);
  otherwise metrics logged after the checkpoint's step are dropped on resume so the curve has no
  duplicate steps.
- **Checkpoint** (``state``) — ``save_checkpoint(path, payload)`` checks the free disk space first
  (``DiskSpaceError: no disk space for checkpoints: need X, have Y`` is raised BEFORE anything is written),
  then writes atomically (temp file + rename: a kill -9 mid-save leaves the previous checkpoint intact).
  ``load_checkpoint(path)`` uses ``torch.load(weights_only=True)``. Build the payload with
  ``training_state(...)`` and restore it with ``restore_training_state(...)``: model / optimizer /
  scheduler / grad-scaler state dicts, ``TrainProgress`` (epoch, step, batches done in the epoch) and the
  RNG states of python, numpy and torch (stored as tensors and lists, so ``weights_only`` accepts them).
  There is ONE ``checkpoint.pt`` per run: "keep only the latest" for the full state is by construction
  (the reference's ``if_save_latest``). ``CheckpointTimer`` says when a mid-epoch save is due.
- **Exported weights** (``run_dir``) — ``export_weights(path, write)`` writes a small weight file with the
  same disk-space check and atomicity. Following the reference's ``if_save_every_weights``, every export is
  kept by default (they are what users pick in the inference tab); ``keep="latest"`` moves older exports
  of the same experiment (``older_exports=export_name_pattern("<exp>-e{epoch}.ckpt")``) into
  ``<weights-dir>/.trash/``.
- **Data order** (``batching``) — ``length_bucketed_batches(lengths, batch_size, seed, epoch)`` gives a
  deterministic list of batches per epoch (a pure function of seed and epoch), so a resumed run continues
  with the same batches: skip the first ``progress.batch_in_epoch`` of the epoch. ``shard_batches`` gives
  each torch.distributed rank its share (same count on every rank, as DistributedSampler does);
  ``default_batch_size`` picks a batch size from free CUDA memory or available RAM.
- **Devices** — ``pick_device``/``autocast_for``/``make_grad_scaler`` from ``gpt_sovits.device``; the
  scaler enables loss scaling only for fp16 autocast.
- **Distributed** (``distributed``) — ``init_distributed(device)`` joins the process group when launched
  by ``torchrun`` (``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` set by torchrun); ``DistInfo.is_main`` is true on
  rank 0 only, and only rank 0 writes files or events.
- **Progress** (``progress``) — ``ProgressReporter`` emits ``progress`` events with an ETA (computed from
  the steps run in THIS process, so a resumed run does not look instantly fast) and the ``saved`` /
  ``result`` events.
- **Stop** (``progress``) — ``StopFlag`` turns SIGTERM/SIGINT (``core.jobs.Job.stop``) into the
  ``should_stop`` callable ``run_trainer`` hands to ``train``, which checks it at step boundaries, so a
  stopped trainer saves its state and exits cleanly; ``kill -9`` is covered by the atomic checkpoint.
- **S2 loop** (``loop``) — what the two S2 trainers (``s2`` for v1/v2/v2Pro, ``s2v3`` for v3/v4 LoRA)
  share: ``EpochRun`` (the run's state; a trainer gives ``train_batch``, ``step_schedulers``,
  ``save_state``, ``write_export``), ``train_to_end`` (the resumable epoch loop, metrics, checkpoints,
  exports, stop and step limit, the ``result`` event), ``make_loader``, ``AdamWRecipe``,
  ``exponential_lr``, ``add_loop_args`` and ``trainer_main``.

A trainer, in outline (see ``gpt_sovits/train/s1.py`` for the real one)::

    def train(cfg: S1TrainConfig, events: EventWriter, should_stop: Callable[[], bool]) -> S1TrainResult:
        dist = init_distributed(cfg.device)                # torchrun-aware; dist.device is the device
        run = RunDir(cfg.exp_dir / "s1_train", writer=dist.is_main)
        seed_everything(cfg.seed)
        ... build model, optimizer, scheduler, scaler = make_grad_scaler(dist.device) ...
        net = wrap_ddp(model, dist)
        prog = TrainProgress()
        if (state := run.prepare(fresh=cfg.fresh)) is not None:  # after restore, RNG streams continue too
            prog = restore_training_state(state, model=model, optimizer=..., scheduler=..., scaler=scaler)
        run.write_config(config_dict)
        reporter = ProgressReporter(events, "s1", total_steps, prog.step, enabled=dist.is_main)
        timer = CheckpointTimer(cfg.checkpoint_minutes)
        for epoch in range(prog.epoch, cfg.epochs):
            batches = shard_batches(length_bucketed_batches(lengths, bs, cfg.seed, epoch), dist)
            for i, batch in enumerate(batches):
                if i < prog.batch_in_epoch: continue      # trained before the restart
                with autocast_for(dist.device): loss = ...
                scaler.scale(loss).backward(); ... optimizer step ...
                prog.step += 1; prog.batch_in_epoch = i + 1
                run.append_metrics({"step": prog.step, "epoch": epoch + 1, "loss/...": ...})
                reporter.step(prog.step, epoch, {"loss": ...})
                if should_stop(): run.save(training_state(...)); return ...   # resumable
                if timer.due(): run.save(training_state(...)); timer.reset()
            prog.epoch, prog.batch_in_epoch = epoch + 1, 0
            if export due: export_weights(...) THEN reporter.saved(...)   # export before the checkpoint,
            run.save(training_state(...))                                 # so a kill between them re-exports
        reporter.result(...)

    def main(argv=None) -> int:
        args = parse_args(build_parser(), argv)                # --config values, flags win
        code, result = run_trainer(lambda: config_from_args(S1TrainConfig, args), train, EventWriter(args.events))
        return code

Errors for a person: raise ``errors.TrainingError`` (or a subclass; every project error is a
``core.errors.UserError``); ``run_trainer`` reports it (an ``error`` event, one stderr line, a line in
log.txt, exit code 2). Any other exception is a defect: reported as an internal error, its traceback in
log.txt, and raised.
"""
