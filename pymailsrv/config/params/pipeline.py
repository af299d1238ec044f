"""The message pipeline's parameters (docs/pipeline.md), named after Postfix's milter ones."""

from pymailsrv.config.params.spec import Param

PARAMS = (
    Param("smtpd_pipeline", "list", "restrictions, header_checks, cleanup, milters, content_filter",
          "The stages of every message received over SMTP, in order (like smtpd_milters): the "
          "built-in restrictions (smtpd_*_restrictions), header_checks, cleanup (Received:, "
          "Message-ID:, Date:, PREPEND headers), milters (smtpd_milters), content_filter, or "
          "python:MODULE:FACTORY; "
          "{ name, default_action = ..., timeout = ... } sets one stage's options."),
    Param("non_smtpd_pipeline", "list", "milters, content_filter",
          "The stages of mail the server generates (bounces, delay and success notices) before "
          "it is queued, in order (like non_smtpd_milters): header_checks, milters "
          "(non_smtpd_milters), content_filter or "
          "python:MODULE:FACTORY, with options as in smtpd_pipeline."),
    Param("pipeline_default_action", "enum", "tempfail",
          "What a stage that fails (raises or runs out of time) decides, unless its "
          "default_action option says otherwise (like milter_default_action): accept, tempfail "
          "(451), reject (550) or quarantine (hold the message). The restrictions always tempfail.",
          choices=("accept", "tempfail", "reject", "quarantine")),
    Param("pipeline_stage_timeout", "time", "30s",
          "Time limit of one event for a stage that does not bound its own work (python: stages); "
          "a stage's timeout option overrides it."),
)
