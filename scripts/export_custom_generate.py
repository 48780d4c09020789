"""Export our exact methods as transformers custom_generate folders, ready to push to the Hub.

    python scripts/export_custom_generate.py [--out outputs/custom_generate]

Writes <out>/<method>/{README.md, custom_generate/generate.py, custom_generate/requirements.txt} for each method in
stairs_decoding.custom_generate.exported(); then, with stairs-decoding installed,
    target.generate(**inputs, assistant_model=draft, custom_generate="<out>/stairs_cached", trust_remote_code=True,
                    num_assistant_tokens=4, max_new_tokens=64)
returns what target.generate(do_sample=False) returns. Push a folder with `huggingface-cli upload <repo> <folder>`.
"""
import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/custom_generate", help="output folder (default: outputs/custom_generate)")
    args = parser.parse_args(argv)
    from stairs_decoding import cli
    from stairs_decoding.custom_generate import export

    return cli.run(lambda: print(*export(args.out), sep="\n"))


if __name__ == "__main__":
    sys.exit(main())
