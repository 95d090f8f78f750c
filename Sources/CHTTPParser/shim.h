// Node's http-parser, from Debian's libhttp-parser-dev (scripts/setup installs it): the
// gateway's HTTP/1.1 wire parser. It parses bytes in place and reports what it finds
// through callbacks, with no allocation. Imported as it is; no C of ours here.
#include <http_parser.h>
