import sys

from walkme_dic.cli import main

sys.exit(main())
