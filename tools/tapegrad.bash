# bash completion for tapegrad                                  -*- shell-script -*-
# Installed as share/bash-completion/completions/tapegrad (bash-completion loads it
# on first use); or source it. tests/test_cli_docs.c checks that it offers every
# command and every option `tapegrad COMMAND --help` lists.

_tapegrad()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local commands="train eval predict cv gradcheck"
    if [[ $COMP_CWORD -eq 1 ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$commands --help --version" -- "$cur")
        return
    fi
    local options
    case ${COMP_WORDS[1]} in
        train) options="--out --plot --json --quiet --resume --checkpoint-every --threads --help" ;;
        eval) options="--json --plot --threads --help" ;;
        predict) options="--proba --threads --help" ;;
        cv) options="--folds --grid --metric --out --json --quiet --threads --help" ;;
        gradcheck) options="--json --threads --help" ;;
        *) return ;;
    esac
    case $prev in
        --threads | --folds | --grid | --checkpoint-every) return ;; # a number; KEY=VALUES
        --resume)
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -f -X '!*.safetensors' -- "$cur"; compgen -d -- "$cur")
            return
            ;;
        --metric)
            mapfile -t COMPREPLY < <(compgen -W "accuracy balanced_accuracy log_loss brier roc_auc average_precision f1_macro f1_weighted precision_macro recall_macro precision_weighted recall_weighted" -- "$cur")
            return
            ;;
        --out)
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            return
            ;;
        --plot)
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -f -X '!*.svg' -- "$cur"; compgen -d -- "$cur")
            return
            ;;
    esac
    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$options" -- "$cur")
        return
    fi
    # Positional arguments: configs, models and data files, and folders to walk into.
    local suffixes=json
    [[ ${COMP_WORDS[1]} == eval || ${COMP_WORDS[1]} == predict ]] && suffixes="safetensors csv json"
    compopt -o filenames 2>/dev/null
    mapfile -t COMPREPLY < <(for s in $suffixes; do compgen -f -X "!*.$s" -- "$cur"; done; compgen -d -- "$cur")
}
complete -F _tapegrad tapegrad
