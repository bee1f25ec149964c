#compdef toolrun

_toolrun_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _TOOLRUN_COMPLETE=complete_zsh toolrun)
}

compdef _toolrun_completion toolrun
